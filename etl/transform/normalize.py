"""Normalization of the keys chats and CRM records are matched on: emails, phones, names.

Pure and vectorized: string clean-up runs as pandas column operations, and the costly checks
(email-validator's syntax and IDNA rules, about 20 µs an address; phonenumbers' parse) run once
per distinct value, memoized across chunks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import pandas as pd
import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from etl.text import is_cjk

EMPTY, INVALID, OK = "empty", "invalid", "ok"

_ANGLE = r"<\s*([^<>]*)\s*>"
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SIMPLE_ADDRESS = rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+[a-z](?:[a-z0-9-]{{0,61}}[a-z])?"
_SPECIAL_USE = r"[@.](?:" + "|".join(SPECIAL_USE_DOMAIN_NAMES) + r")$"
_GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
_ANONYMOUS = re.compile(r"^\s*visitor\s*\d+\s*$", re.IGNORECASE)


def email_key(
    raw: pd.Series, provider_rules: Iterable[str] = (), strip_plus_tags: bool = False
) -> tuple[pd.Series, pd.Series]:
    """(email_normalized, status) for a column of raw addresses.

    ``email_normalized`` is the comparison key (None when there is no usable address);
    ``status`` is ``ok``, ``empty`` (nothing given) or ``invalid`` (given but not an address).
    """
    text = raw.astype("string").fillna("")
    text = text.str.strip().str.replace(r"^mailto:", "", regex=True, case=False)
    bracketed = text.str.extract(_ANGLE, expand=False)
    text = bracketed.where(bracketed.notna(), text)
    text = text.str.normalize("NFKC").str.strip().str.lower().str.rstrip(".")
    empty = text.eq("")
    # Plain ASCII addresses (the bulk) are decided by a conservative pattern that email-validator
    # agrees with (a property test checks it); everything else goes to email-validator itself.
    simple = text.str.fullmatch(_SIMPLE_ADDRESS) & ~text.str.contains("--", regex=False)
    local_len = text.str.find("@")
    simple &= (
        (local_len <= 64) & (text.str.len() <= 254) & ~text.str.contains(_SPECIAL_USE, regex=True)
    )
    normalized = text.where(simple, None).astype(object)
    hard = ~simple & ~empty
    if hard.any():
        keys = {value: _email_key(value) for value in text[hard].unique()}
        normalized[hard] = text[hard].map(keys).astype(object)
    normalized = normalized.where(normalized.notna() & ~empty, None)
    rules = set(provider_rules)
    if "gmail" in rules or strip_plus_tags:
        normalized = _provider_rules(normalized, "gmail" in rules, strip_plus_tags)
    status = pd.Series(OK, index=raw.index, dtype=object)
    status[normalized.isna()] = INVALID
    status[empty] = EMPTY
    return normalized, status


@lru_cache(maxsize=1_000_000)
def _email_key(value: str) -> str | None:
    """One cleaned address -> its key, or None when email-validator says it is not an address."""
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return None
    local = result.local_part.lower()
    return f"{local}@{result.ascii_domain.lower()}" if local else None


def _provider_rules(normalized: pd.Series, gmail: bool, strip_plus_tags: bool) -> pd.Series:
    """Opt-in provider rules: Gmail ignores dots and +tags (googlemail.com is gmail.com)."""
    parts = normalized.astype("string").str.split("@", n=1, expand=True)
    if parts.shape[1] < 2:
        return normalized
    local, domain = parts[0], parts[1]
    if gmail:
        is_gmail = domain.isin(_GMAIL_DOMAINS)
        local = local.where(
            ~is_gmail, local.str.split("+", n=1).str[0].str.replace(".", "", regex=False)
        )
        domain = domain.where(~is_gmail, "gmail.com")
    if strip_plus_tags:
        local = local.str.split("+", n=1).str[0]
    out = (local + "@" + domain).astype(object)
    return out.where(normalized.notna() & local.ne(""), None)


def email_domain(email_normalized: pd.Series) -> pd.Series:
    """The domain of normalized addresses (None where there is no address)."""
    return email_normalized.astype("string").str.split("@", n=1).str[1].astype(object)


def phone_key(raw: pd.Series, default_region: str = "US") -> pd.Series:
    """E.164 (``+81312345678``) where the number parses, else None; for comparison only."""
    text = raw.astype("string").fillna("").str.strip()
    distinct = text[text.ne("")].unique()
    keys = {value: _phone_key(value, default_region) for value in distinct}
    out = text.map(keys).astype(object)
    return out.where(out.notna(), None)


@lru_cache(maxsize=200_000)
def _phone_key(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_anonymous_name(name: str) -> bool:
    """Chat's placeholder names ("Visitor 12345678") are not names."""
    return bool(_ANONYMOUS.match(name or ""))


def split_name(name: str) -> tuple[str, str]:
    """(first_name, last_name) of a visitor name.

    Western names split at the last space. CJK names are written family name first and are not
    split Western-style: "山田 太郎" gives first "太郎", last "山田"; "山田太郎" stays whole as the last
    name. Anonymous placeholders give ("", "").
    """
    text = unicodedata.normalize("NFKC", name or "").strip()
    if not text or is_anonymous_name(text):
        return "", ""
    parts = text.split()
    if is_cjk(text):
        if len(parts) >= 2:
            return " ".join(parts[1:]), parts[0]
        return "", text
    if len(parts) == 1:
        return "", parts[0]
    return " ".join(parts[:-1]), parts[-1]
