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

import numpy as np
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
    Each distinct address is cleaned once, in one pass (``_clean``), not a column pass a step.
    """
    rules = set(provider_rules)
    values = raw.astype("string").to_numpy(dtype=object, na_value="")
    codes, distinct = pd.factorize(values)
    keys = [_clean(value) for value in distinct]  # "" where nothing is left of the address
    empty = np.array([key == "" for key in keys], dtype=bool)
    keys = [None if key == "" else key for key in keys]
    name = raw.name
    if ("gmail" in rules or strip_plus_tags) and any(key is not None for key in keys):
        keys = [_provider_key(key, "gmail" in rules, strip_plus_tags) for key in keys]
        name = None  # (as the provider rules' split of the column left it)
    normalized = np.array(keys, dtype=object)
    status = np.where(pd.isna(normalized), INVALID, OK).astype(object)
    status[empty] = EMPTY
    return (
        pd.Series(normalized[codes], index=raw.index, dtype=object, name=name),
        pd.Series(status[codes], index=raw.index, dtype=object),
    )


_MAILTO = re.compile(r"^mailto:", re.IGNORECASE)
_M = ("m", "M")  # what ``_MAILTO`` can start with (no other letter folds to m)
_ANGLE_RE = re.compile(_ANGLE)
_SIMPLE_RE = re.compile(_SIMPLE_ADDRESS)
# ``_SPECIAL_USE`` as suffixes: the same test on text the simple pattern matched (no newline)
_SPECIAL_USE_ENDS = tuple(f"{sep}{name}" for name in SPECIAL_USE_DOMAIN_NAMES for sep in "@.")


def _clean(value: str) -> str | None:
    """One raw address -> its key ("" when nothing is left of it, None when it is no address).

    Strip, drop ``mailto:``, take what is in <>, NFKC, strip, lower-case, drop trailing dots,
    then check: the column steps this replaced, one value at a time and each step only where it
    can change something (tests/unit/test_fast_plan.py holds the two to the same keys)."""
    text = value.strip()
    if text[:1] in _M:  # (cheap checks first: most addresses have no prefix, no <>, no Unicode)
        text = _MAILTO.sub("", text)
    if "<" in text:
        bracketed = _ANGLE_RE.search(text)
        if bracketed is not None:
            text = bracketed.group(1)
    if not text.isascii():  # (NFKC leaves ASCII as it is)
        text = unicodedata.normalize("NFKC", text)
    text = text.strip().lower().rstrip(".")
    if text == "":
        return ""
    # Plain ASCII addresses (the bulk) are decided by a conservative pattern that email-validator
    # agrees with (a property test checks it); everything else goes to email-validator itself.
    if (
        _SIMPLE_RE.fullmatch(text)
        and "--" not in text
        and text.find("@") <= 64
        and len(text) <= 254
        and not text.endswith(_SPECIAL_USE_ENDS)
    ):
        return text
    return _email_key(text)


def _provider_key(key: str | None, gmail: bool, strip_plus_tags: bool) -> str | None:
    """Opt-in provider rules: Gmail ignores dots and +tags (googlemail.com is gmail.com)."""
    if key is None:
        return None
    local, _at, domain = key.partition("@")
    if gmail and domain in _GMAIL_DOMAINS:
        local, domain = local.split("+", 1)[0].replace(".", ""), "gmail.com"
    if strip_plus_tags:
        local = local.split("+", 1)[0]
    return f"{local}@{domain}" if local else None


@lru_cache(maxsize=1_000_000)
def _email_key(value: str) -> str | None:
    """One cleaned address -> its key, or None when email-validator says it is not an address."""
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return None
    local = result.local_part.lower()
    return f"{local}@{result.ascii_domain.lower()}" if local else None


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
