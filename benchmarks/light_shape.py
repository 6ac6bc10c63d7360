"""A "light" export shape for the benchmark: few large NDJSON chat files, one large Sell CSV.

`etl.generate` (the realistic shape) writes many gzipped pages of 1,000 heavy chats and Sell
collection pages of 10,000. This writes the other shape a large account hands over, the one of
the issue "a columnar data plane": for 1M chats x 1M records,

- ``chat/chats_01.jsonl`` ... ``chats_16.jsonl``: 16 NDJSON files of ~80 MB (fewer, as large,
  below 1M), one light chat a line (~1.3 KB: visitor, session, agents, department, tags,
  rating, a few ``chat.msg`` history events; ~5% offline messages), plus ``agents.json`` and
  ``departments.json`` (those of `etl.generate`);
- ``sell/leads.csv``: the leads as ONE Smart List CSV (UI labels, UTF-8 with BOM, CRLF),
  ``records / 2`` rows; ``sell/contacts.json``: the contacts as one API collection envelope,
  the other half (a company and nine people each); ``sell/users.json``: the users of
  `etl.generate`, the owners the CSV and the contacts name;
- ``manifest.json``: the counts, and what a first ``chatsell sync`` (no lead policy) reports
  (``expected_outcomes``) and writes (``expected_rows``), exactly.

The mix, per chat: 45% match a Sell lead or contact by email (15% of them with case and
whitespace noise, 2% with ``mailto:``); 42% are new visitors with a usable email, drawn with
replacement from a pool 3.5x the chats (so ~6% come back: at 1M, ~396,000 distinct emails, the
leads a sync creates); 10% give no email; 3% an invalid one. A lead in 33 has no email; a
contact in 97 shares a lead's email (a chat of that email attaches to both); 5% of the CSV's
emails are in another case.

Deterministic: each file is a pure function of the seed and its place (identities are pure
functions of an index), so files are written in parallel, one per worker, and come out the
same whatever the worker count.

    python benchmarks/light_shape.py OUT --chats 1M --records 1M
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import multiprocessing
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from etl.generate import (  # noqa: E402 - the realistic generator's people, agents and users
    ACTIVE_OWNERS,
    AGENTS,
    DEPARTMENTS,
    INACTIVE_OWNERS,
    INVALID_EMAILS,
    USER_EMAILS,
    Plan,
    _reference_files,
)

GENERATOR = "chatsell.bench.light/1"  # bump when the same arguments would write other bytes
MANIFEST_NAME = "manifest.json"
MAX_FILES = 16
CHATS_PER_FILE = 62_500  # 16 files at 1M chats, ~80 MB each

SELL_MATCH_SHARE = 0.45
NEW_VISITOR_SHARE = 0.42
NO_EMAIL_SHARE = 0.10
# the rest (3%): an invalid email
CASE_NOISE_SHARE = 0.15  # of the Sell matches
MAILTO_SHARE = 0.02  # of the Sell matches
NEW_CASE_NOISE_SHARE = 0.05  # of the new visitors (the same email, typed otherwise)
VISITOR_POOL = 3.5  # new-visitor emails per chat, drawn with replacement
OFFLINE_SHARE = 0.05
MISSED_SHARE = 0.03
PHONE_SHARE = 0.10
NOTES_SHARE = 0.02
CSV_CASE_NOISE_SHARE = 0.05
LEAD_SHARE_OF_MATCHES = 0.6  # a matching chat names a lead, else a contact
LEAD_WITHOUT_EMAIL = 33  # lead i has no email when i % 33 == 7
SHARED_EMAIL = 97  # contact i (a person) takes a lead's email when i % 97 == 5
COMPANY_EVERY = 10  # contact i is a company when i % 10 == 0; people i+1..i+9 work there

ACCOUNT = "10414779"
PERIOD_END = datetime(2026, 11, 15, tzinfo=UTC)
PERIOD_START = int((PERIOD_END - timedelta(days=365)).timestamp())
SPAN = 365 * 86400

CSV_HEADER = [
    "Id", "First Name", "Last Name", "Company Name", "Title", "Email", "Phone", "Mobile",
    "Owner", "Status", "Source", "Tags", "Created At", "Updated At",
]  # fmt: skip
FIRST = ("Emily", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Sophia", "Lucas", "Mia", "Mason",
         "Isabella", "Logan", "Amelia", "Oliver", "Harper", "Elijah", "Evelyn", "James",
         "Abigail", "Benjamin", "Charlotte", "Daniel", "Grace", "Henry", "Chloe", "Jacob", "Lena",
         "Samuel", "Hannah", "Marco", "Priya", "Arjun", "Sofia", "Mateo", "Lucia", "Jonas",
         "Clara", "Felix", "Amara", "Kwame", "Ingrid", "Rafael", "Zoe", "Connor", "Aisha",
         "Diego", "Freya", "Tomasz", "Elena", "Omar")  # fmt: skip
LAST = ("Smith", "Johnson", "Clarke", "Reyes", "Nair", "Patel", "Weber", "Rossi", "Dubois",
        "Fischer", "Hughes", "Bernard", "Thompson", "Grant", "Kim", "Martins", "Brooks", "Vogel",
        "Miller", "Garcia", "Novak", "Jensen", "Silva", "Costa", "Moreau", "Schmidt", "Andersen",
        "Kowalski", "Murphy", "Walsh", "Okafor", "Haddad", "Lindqvist", "Ferreira", "Santos",
        "Bauer", "Hoffmann", "Romero", "Ivanova", "Chen", "Nguyen", "Kaur", "Mendes", "Larsen",
        "Byrne", "Duarte", "Khan", "Ward", "Sato", "Tanaka")  # fmt: skip
WORDS = ("Lumen", "Northwind", "Bluepeak", "Cedar", "Harbor", "Quartz", "Ember", "Atlas",
         "Summit", "Riverbend", "Silverline", "Brightwave", "Ironwood", "Meridian", "Pinecrest",
         "Oakridge", "Helix", "Solace", "Vantage", "Kestrel")  # fmt: skip
KINDS = ("Analytics", "Logistics", "Labs", "Health", "Foods", "Systems", "Retail", "Partners",
         "Media", "Energy", "Robotics", "Studio", "Consulting", "Software")  # fmt: skip
FREE_DOMAINS = ("mail.example", "example.com", "example.org", "example.net", "inbox.example",
                "post.example")  # fmt: skip
TITLES = ("CEO", "CTO", "Head of Sales", "Operations Manager", "IT Director", "Office Manager")
STATUSES = ("New", "New", "Working", "Working", "Unqualified", "Qualified")
SOURCES = ("Website", "Referral", "Trade show", "Partner", "Cold call", "Chat")
TAGS = ("pricing", "demo", "support", "billing", "trial", "enterprise", "api", "sso", "invoice",
        "onboarding")  # fmt: skip
COUNTRIES = ("US", "US", "US", "GB", "GB", "DE", "FR", "CA", "AU", "IN", "ES", "BR", "NL", "SG")
CITIES = {"US": "New York", "GB": "London", "DE": "Berlin", "FR": "Paris", "CA": "Toronto",
          "AU": "Sydney", "IN": "Mumbai", "ES": "Madrid", "BR": "Sao Paulo", "NL": "Amsterdam",
          "SG": "Singapore", "JP": "Tokyo"}  # fmt: skip
RATINGS = (None, None, None, None, None, None, "good", "good", "good", "bad")
VISITOR_LINES = (
    "Hi, do you offer annual billing for the Team plan?",
    "Hello, I'd like to book a demo for my team next week.",
    "Can I change the owner of our account?",
    "Is there an API for exporting reports?",
    "We're comparing vendors. What would twenty seats cost per month?",
    "How long is the free trial, and do I need a card?",
    "Do you support single sign-on with Okta?",
    "Could you send me the details by email?",
    "Is onboarding included in that price?",
    "Thursday afternoon works for me.",
    "OK, and can we cancel any time?",
    "Perfect, that answers it. Thanks for your help!",
)
AGENT_LINES = (
    "Hi, thanks for reaching out! Let me check that for you.",
    "Yes, annual billing is available and saves about 15%.",
    "I can book a demo for you this week. What time suits you?",
    "Our API docs are at https://developer.example-corp.example, reports are there.",
    "The trial is 14 days and no card is needed.",
    "Yes, SSO with Okta and Azure AD is included in Business and Enterprise.",
    "I'll ask a colleague from sales to follow up with you by email.",
    "You're welcome! Is there anything else I can help with?",
)
OFFLINE_LINES = (
    "Hi, please call me back about pricing for our team. Thanks!",
    "I'd like a quote for the Enterprise plan. Best time to reach me is mornings.",
    "Can someone from sales contact me about a demo next week?",
)
NOTES = ("Asked for a callback on Tuesday.", "Interested in Enterprise; budget approved for Q3.",
         "Prefers email over phone.")  # fmt: skip

_DEPARTMENT_IDS = tuple(DEPARTMENTS)  # Sales JP, Sales EN, Support, Billing
_DEPARTMENT_DRAW = (1, 1, 1, 1, 1, 2, 2, 2, 3, 0)  # index into _DEPARTMENT_IDS: mostly sales
_MEMBERS: dict[int, list[tuple[str, str]]] = {d: [] for d in DEPARTMENTS}
for _agent in AGENTS:
    for _department in _agent[6]:
        _MEMBERS[_department].append((str(_agent[0]), _agent[2]))
_OWNER_EMAILS = tuple(USER_EMAILS[u] for u in ACTIVE_OWNERS) + tuple(
    USER_EMAILS[u] for u in INACTIVE_OWNERS
)
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CLOCK = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]
_DAYS: dict[int, str] = {}
_SLUGS = {w: "".join(c for c in w.lower() if c.isalnum()) for w in FIRST + LAST + WORDS + KINDS}


# -- small deterministic helpers -------------------------------------------------------------------


def _mix(seed: int, stream: int, index: int) -> int:
    """A well-mixed 32-bit hash of (seed, stream, index): identities as pure functions."""
    h = (seed * 0x9E3779B1 ^ stream * 0x85EBCA6B ^ index * 0xC2B2AE35) & 0xFFFFFFFFFFFF
    h ^= h >> 29
    h = h * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 32
    return h & 0xFFFFFFFF


def _iso(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    day = _DAYS.get(days)
    if day is None:
        day = _DAYS[days] = (datetime(1970, 1, 1) + timedelta(days=days)).strftime("%Y-%m-%d")
    return f"{day}T{_CLOCK[rest]}Z"


def _iso_ms(seconds: int, millis: int) -> str:
    return f"{_iso(seconds)[:-1]}.{millis:03d}000Z"


def _b62(value: int, width: int = 10) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(_B62[digit])
    return "".join(digits)


def _slug(text: str) -> str:
    return _SLUGS.get(text) or "".join(c for c in text.lower() if c.isalnum())


def _case_noise(rng: Random, email: str) -> str:
    """The same address as someone types it: capitals, spaces around it."""
    local, domain = email.split("@", 1)
    local = ".".join(p[:1].upper() + p[1:] for p in local.split("."))
    domain = domain.upper() if rng.random() < 0.3 else domain.title()
    return f"{' ' * int(rng.random() * 3)}{local}@{domain}{' ' * (1 + int(rng.random() * 2))}"


class Identities:
    """Who the Sell records and the visitors are, as pure functions of their index.

    Email forms never collide across kinds: leads ``first.last<i>@``, contact people
    ``flast<i>@`` (no dot), companies ``info@<company domain>``, visitors ``first_last<k>@``.
    """

    def __init__(self, seed: int, leads: int, contacts: int) -> None:
        self.seed, self.leads, self.contacts = seed, leads, contacts

    def lead(self, i: int) -> tuple[str, str, str, str | None]:
        """(first name, last name, company, email or None)."""
        h = _mix(self.seed, 1, i)
        first, last = FIRST[h % len(FIRST)], LAST[(h >> 8) % len(LAST)]
        word, kind = WORDS[(h >> 14) % len(WORDS)], KINDS[(h >> 19) % len(KINDS)]
        if (h >> 24) % 3 == 0:
            domain = FREE_DOMAINS[(h >> 26) % len(FREE_DOMAINS)]
        else:
            domain = f"{_slug(word)}-{_slug(kind)}{i % 9973}.example"
        email = None if i % LEAD_WITHOUT_EMAIL == 7 else f"{_slug(first)}.{_slug(last)}{i}@{domain}"
        return first, last, f"{word} {kind}", email

    def company(self, c: int) -> tuple[str, str]:
        """(name, domain) of the company contact ``c`` (a multiple of COMPANY_EVERY)."""
        h = _mix(self.seed, 3, c)
        word, kind = WORDS[h % len(WORDS)], KINDS[(h >> 8) % len(KINDS)]
        return f"{word} {kind}", f"{_slug(word)}-{_slug(kind)}-c{c}.example"

    def contact(self, i: int) -> tuple[bool, str | None, str | None, str, str]:
        """(is company, first name, last name, company name, email)."""
        company, domain = self.company(i - i % COMPANY_EVERY)
        if i % COMPANY_EVERY == 0:
            return True, None, None, company, f"info@{domain}"
        h = _mix(self.seed, 4, i)
        first, last = FIRST[h % len(FIRST)], LAST[(h >> 8) % len(LAST)]
        email = f"{_slug(first)[:1]}{_slug(last)}{i}@{domain}"
        shared = self.shared_lead(i)
        if shared is not None:
            email = self.lead(shared)[3] or email
        return False, first, last, company, email

    def shared_lead(self, i: int) -> int | None:
        """The lead whose email contact ``i`` takes, if it is one of those people."""
        if self.leads and i % SHARED_EMAIL == 5 and i % COMPANY_EVERY:
            return i * 31 % self.leads
        return None

    def visitor(self, k: int) -> tuple[str, str]:
        """(name, email) of new visitor ``k``."""
        h = _mix(self.seed, 5, k)
        first, last = FIRST[h % len(FIRST)], LAST[(h >> 8) % len(LAST)]
        domain = FREE_DOMAINS[(h >> 16) % len(FREE_DOMAINS)]
        return f"{first} {last}", f"{_slug(first)}_{_slug(last)}{k}@{domain}"


def shared_counts(ids: Identities) -> dict[int, int]:
    """lead index -> how many contacts share its email (only leads that have one)."""
    counts: Counter = Counter()
    for i in range(5, ids.contacts, SHARED_EMAIL):
        lead = ids.shared_lead(i)
        if lead is not None and ids.lead(lead)[3] is not None:
            counts[lead] += 1
    return dict(counts)


# -- the layout ------------------------------------------------------------------------------------


def layout(chats: int) -> list[tuple[int, int, int]]:
    """(file number, first chat, count) of each chat file: at most 16, ~62,500 chats each."""
    files = max(1, min(MAX_FILES, math.ceil(chats / CHATS_PER_FILE)))
    bounds = [chats * n // files for n in range(files + 1)]
    return [(n + 1, bounds[n], bounds[n + 1] - bounds[n]) for n in range(files)]


def split_records(records: int) -> tuple[int, int]:
    leads = records // 2
    return leads, records - leads


# -- chats -----------------------------------------------------------------------------------------


def write_chat_file(
    out: str, seed: int, chats: int, records: int, number: int, first: int, count: int
) -> dict[str, Any]:
    """One NDJSON file of chats ``first`` .. ``first + count - 1``; its counts and new-visitor
    keys (the manifest counts distinct new emails over every file)."""
    leads, contacts = split_records(records)
    ids = Identities(seed, leads, contacts)
    shared = shared_counts(ids)
    pool = max(1, round(chats * VISITOR_POOL))
    rng = Random(seed * 1_000_003 + number)
    rand = rng.random
    slot = SPAN / max(chats, 1)
    mix: Counter = Counter()
    new_keys: list[int] = []
    lines = []
    dumps = orjson.dumps
    matchable = leads - len(range(7, leads, LEAD_WITHOUT_EMAIL)) + contacts
    for g in range(first, first + count):
        start = PERIOD_START + int(slot * (g + rand()))
        draw = rand()
        phone = notes = ""
        if draw < SELL_MATCH_SHARE and matchable > 0:
            name, email, vkey, targets = _sell_visitor(ids, shared, rng)
            noise = rand()
            if noise < MAILTO_SHARE:
                email = "mailto:" + email
            elif noise < MAILTO_SHARE + CASE_NOISE_SHARE:
                email = _case_noise(rng, email)
            category = "sell_match"
            mix["matched_activities"] += targets
        elif draw < SELL_MATCH_SHARE + NEW_VISITOR_SHARE:
            k = int(rand() * pool)
            name, email = ids.visitor(k)
            if rand() < NEW_CASE_NOISE_SHARE:
                email = _case_noise(rng, email)
            vkey, category = f"n{k}", "new_visitor"
            new_keys.append(k)
        elif draw < SELL_MATCH_SHARE + NEW_VISITOR_SHARE + NO_EMAIL_SHARE:
            name = f"Visitor {_mix(seed, 8, g) % 90_000_000 + 10_000_000}"
            email, vkey, category = "", f"e{g}", "no_email"
        else:
            name = f"Visitor {_mix(seed, 8, g) % 90_000_000 + 10_000_000}"
            email = INVALID_EMAILS[int(rand() * len(INVALID_EMAILS))]
            vkey, category = f"i{g}", "invalid_email"
        mix[category] += 1
        if email and rand() < PHONE_SHARE:
            phone = f"+1 212 555 {int(rand() * 10000):04d}"
        if rand() < NOTES_SHARE:
            notes = NOTES[int(rand() * len(NOTES))]
        department = _DEPARTMENT_IDS[_DEPARTMENT_DRAW[int(rand() * 10)]]
        country = "JP" if department == _DEPARTMENT_IDS[0] else COUNTRIES[int(rand() * 14)]
        tags = [TAGS[int(rand() * len(TAGS))]] if rand() < 0.4 else []
        started = _iso(start)
        chat_id = f"{started[2:4]}{started[5:7]}.{ACCOUNT}.{_b62(g * 7919 + seed)}"
        visitor = {"id": f"{ACCOUNT}.{vkey}", "name": name, "email": email, "phone": phone,
                   "notes": notes}  # fmt: skip
        session = {"country_code": country, "city": CITIES[country]}
        dept_name = DEPARTMENTS[department][0]
        if rand() < OFFLINE_SHARE:
            mix["offline_msg"] += 1
            chat = {"id": chat_id, "type": "offline_msg", "timestamp": started,
                    "update_timestamp": _iso(start + 30 + int(rand() * 90)), "unread": False,
                    "deleted": False, "visitor": visitor, "session": session,
                    "department_id": department, "department_name": dept_name, "tags": tags,
                    "message": OFFLINE_LINES[int(rand() * len(OFFLINE_LINES))],
                    "zendesk_ticket_id": None}  # fmt: skip
            lines.append(dumps(chat))
            continue
        mix["chat"] += 1
        missed = rand() < MISSED_SHARE
        members = _MEMBERS[department]
        agents = [] if missed else [members[int(rand() * len(members))]]
        t = start
        history = [{"name": name, "type": "chat.memberjoin", "timestamp": _iso_ms(t, 100)}]
        n_messages = 1 + int(rand() * 2) if missed else 4 + int(rand() * 3)
        for m in range(n_messages):
            t += 5 + int(rand() * 90)
            if m % 2 == 0 or missed:
                sender, text = name, VISITOR_LINES[int(rand() * len(VISITOR_LINES))]
            else:
                sender, text = agents[0][1], AGENT_LINES[int(rand() * len(AGENT_LINES))]
            history.append({"name": sender, "type": "chat.msg", "msg": text,
                            "timestamp": _iso_ms(t, int(rand() * 1000))})  # fmt: skip
        end = t + 10
        rating = None if missed else RATINGS[int(rand() * len(RATINGS))]
        chat = {"id": chat_id, "type": "chat", "timestamp": started, "end_timestamp": _iso(end),
                "update_timestamp": _iso(end + 5 + int(rand() * 600)), "duration": end - start,
                "missed": missed, "unread": False, "deleted": False, "visitor": visitor,
                "session": session, "agent_ids": [a for a, _ in agents],
                "agent_names": [n for _, n in agents], "department_id": department,
                "department_name": dept_name, "tags": tags, "rating": rating, "comment": None,
                "zendesk_ticket_id": None, "history": history}  # fmt: skip
        lines.append(dumps(chat))
    name = f"chat/chats_{number:02d}.jsonl"
    data = b"\n".join(lines) + b"\n" if lines else b""
    (Path(out) / name).write_bytes(data)
    return {"file": name, "records": count, "bytes": len(data), "mix": dict(mix),
            "new_keys": new_keys}  # fmt: skip


def _sell_visitor(
    ids: Identities, shared: dict[int, int], rng: Random
) -> tuple[str, str, str, int]:
    """(name, email, visitor key, records with that email) of a Sell lead or contact."""
    while True:  # a lead without email is drawn again
        if ids.leads and (not ids.contacts or rng.random() < LEAD_SHARE_OF_MATCHES):
            i = int(rng.random() * ids.leads)
            first, last, _company, email = ids.lead(i)
            if email is None:
                continue
            return f"{first} {last}", email, f"l{i}", 1 + shared.get(i, 0)
        i = int(rng.random() * ids.contacts)
        is_company, first, last, company, email = ids.contact(i)
        lead = ids.shared_lead(i)
        has_lead_email = lead is not None and ids.lead(lead)[3] is not None
        targets = 1 + shared[lead] if has_lead_email else 1
        name = f"{first} {last}" if not is_company else f"Visitor {_mix(ids.seed, 9, i) % 10**8}"
        return name, email, f"c{i}", targets


# -- Sell ------------------------------------------------------------------------------------------


def _times(rng: Random) -> tuple[str, str]:
    created = PERIOD_START - 2 * SPAN + int(rng.random() * 2.5 * SPAN)
    return _iso(created), _iso(created + int(rng.random() * 0.4 * SPAN))


def write_leads_csv(out: str, seed: int, records: int) -> dict[str, Any]:
    """``sell/leads.csv``: every lead, one Smart List CSV as Sell's UI writes it."""
    leads, contacts = split_records(records)
    ids = Identities(seed, leads, contacts)
    rng = Random(seed * 1_000_003 + 900_001)
    rand = rng.random
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    rows = []
    for i in range(leads):
        first, last, company, email = ids.lead(i)
        if email and rand() < CSV_CASE_NOISE_SHARE:
            email = email.title()
        created, updated = _times(rng)
        tag = TAGS[int(rand() * len(TAGS))] if rand() < 0.3 else ""
        rows.append(
            (10_000_001 + i, first, last, company, TITLES[int(rand() * len(TITLES))]
             if rand() < 0.5 else "", email or "",
             f"+1 415 555 {int(rand() * 10000):04d}" if rand() < 0.5 else "", "",
             _OWNER_EMAILS[int(rand() * len(_OWNER_EMAILS))], STATUSES[int(rand() * 6)],
             SOURCES[int(rand() * len(SOURCES))], tag, created, updated)
        )  # fmt: skip
        if len(rows) == 10_000:
            writer.writerows(rows)
            rows = []
    writer.writerows(rows)
    data = ("\ufeff" + buffer.getvalue()).encode("utf-8")
    (Path(out) / "sell/leads.csv").write_bytes(data)
    return {"file": "sell/leads.csv", "records": leads, "bytes": len(data), "mix": {}}


def write_contacts_json(out: str, seed: int, records: int) -> dict[str, Any]:
    """``sell/contacts.json``: every contact, one API collection envelope (written in parts)."""
    leads, contacts = split_records(records)
    ids = Identities(seed, leads, contacts)
    rng = Random(seed * 1_000_003 + 900_002)
    rand = rng.random
    path = Path(out) / "sell/contacts.json"
    size = 0
    with open(path, "wb") as handle:
        size += handle.write(b'{"items":[')
        for begin in range(0, contacts, 10_000):
            items = []
            for i in range(begin, min(begin + 10_000, contacts)):
                is_company, first, last, company, email = ids.contact(i)
                created, updated = _times(rng)
                owner = ACTIVE_OWNERS[int(rand() * len(ACTIVE_OWNERS))]
                items.append(
                    {"data": {"id": 20_000_001 + i, "creator_id": owner, "owner_id": owner,
                              "is_organization": is_company,
                              "contact_id": None if is_company
                              else 20_000_001 + i - i % COMPANY_EVERY,
                              "name": company if is_company else f"{first} {last}",
                              "first_name": first, "last_name": last,
                              "organization_name": None if is_company else company,
                              "customer_status": "current" if rand() < 0.3 else "none",
                              "prospect_status": "none",
                              "title": None if is_company else TITLES[int(rand() * len(TITLES))],
                              "email": email,
                              "phone": f"+1 206 555 {int(rand() * 10000):04d}"
                              if rand() < 0.5 else None,
                              "mobile": None, "tags": [], "custom_fields": {},
                              "created_at": created, "updated_at": updated},
                     "meta": {"type": "contact"}}
                )  # fmt: skip
            part = b",".join(orjson.dumps(item) for item in items)
            size += handle.write((b"," if begin else b"") + part)
        tail = {"type": "collection", "count": contacts, "links": {}}
        size += handle.write(b'],"meta":' + orjson.dumps(tail) + b"}\n")
    return {"file": "sell/contacts.json", "records": contacts, "bytes": size,
            "mix": {"companies": len(range(0, contacts, COMPANY_EVERY))}}  # fmt: skip


# -- the whole export ------------------------------------------------------------------------------


def _task(spec: tuple) -> dict[str, Any]:
    kind, *args = spec
    if kind == "chat":
        return write_chat_file(*args)
    if kind == "leads":
        return write_leads_csv(*args)
    return write_contacts_json(*args)


def generate(
    out: Path, chats: int, records: int, seed: int = 1, workers: int | None = None
) -> dict[str, Any]:
    """Write the light export into ``out`` (its chat/ and sell/ emptied first); return (and
    write) the manifest."""
    if chats < 0 or records < 0:
        raise ValueError("chats and records must be >= 0")
    started = time.perf_counter()
    out = Path(out)
    for sub in ("chat", "sell"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in (out / sub).iterdir():
            if old.is_file():
                old.unlink()
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    # the big files first: a worker that finishes early takes the next one
    tasks: list[tuple] = [("leads", str(out), seed, records), ("contacts", str(out), seed, records)]
    tasks += [("chat", str(out), seed, chats, records, *spec) for spec in layout(chats) if spec[2]]
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    if workers == 1:
        results = [_task(t) for t in tasks]
    else:
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(pool.map(_task, tasks))
    for name, data in _reference_files(Plan.make(seed, 0, 0, False)).items():
        (out / name).write_bytes(data)
    manifest = _manifest(seed, chats, records, results)
    manifest["generate_s"] = round(time.perf_counter() - started, 2)
    manifest["workers"] = workers
    (out / MANIFEST_NAME).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return manifest


EMAIL_KINDS = ("sell_match", "new_visitor", "no_email", "invalid_email")


def _manifest(seed: int, chats: int, records: int, results: list[dict]) -> dict[str, Any]:
    leads, contacts = split_records(records)
    ids = Identities(seed, leads, contacts)
    mix: Counter = Counter()
    seen = bytearray(max(1, round(chats * VISITOR_POOL)))
    files = {}
    chat_bytes = 0
    for result in results:
        files[result["file"]] = {"records": result["records"], "bytes": result["bytes"]}
        mix.update(result["mix"])
        if result["file"].startswith("chat/"):
            chat_bytes += result["bytes"]
            for key in result["new_keys"]:
                seen[key] = 1
    distinct_new = sum(seen) if chats else 0
    shared = shared_counts(ids)
    expected = {
        "matched": mix["sell_match"],
        "lead_created": distinct_new,
        "matched_new_lead": mix["new_visitor"] - distinct_new,
        "no_email": mix["no_email"],
        "invalid_email": mix["invalid_email"],
        "rejected": 0,
        "removed": 0,
    }
    return {
        "generator": GENERATOR,
        "shape": "light",
        "seed": seed,
        "params": {"chats": chats, "records": records},
        "chat": {
            "chats": chats,
            "files": len([f for f in files if f.startswith("chat/")]),
            "bytes": chat_bytes,
            "bytes_per_chat": round(chat_bytes / chats) if chats else 0,
            "kinds": {"chat": mix["chat"], "offline_msg": mix["offline_msg"]},
            "emails": {k: mix[k] for k in EMAIL_KINDS},
            "new_visitor_emails": distinct_new,
        },
        "sell": {
            "leads": leads,
            "leads_without_email": len(range(7, leads, LEAD_WITHOUT_EMAIL)),
            "contacts": contacts,
            "companies": len(range(0, contacts, COMPANY_EVERY)),
            "contacts_sharing_a_lead_email": sum(shared.values()),
            "deals": 0,
            "users": len(USER_EMAILS),
        },
        # what a first `chatsell sync` with no lead policy reports and writes
        "expected_outcomes": expected,
        "expected_rows": {
            # one per (chat, lead or contact of its email), and one per chat of a new lead
            "activities": mix["matched_activities"] + mix["new_visitor"],
            "leads_created": distinct_new,
        },
        "files": files,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/light_shape.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("out", help="directory to write chat/, sell/ and manifest.json into")
    parser.add_argument("--chats", default="100k", help="chats (k/M suffixes)")
    parser.add_argument("--records", help="Sell leads + contacts (default: as many as chats)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, help="processes (default: one per CPU)")
    args = parser.parse_args(argv)
    chats = _count(args.chats)
    records = _count(args.records) if args.records else chats
    manifest = generate(Path(args.out), chats, records, args.seed, args.workers)
    summary = {k: manifest[k] for k in ("generate_s", "workers", "expected_outcomes")}
    summary["chat_bytes"] = manifest["chat"]["bytes"]
    print(json.dumps(summary, indent=2))
    return 0


def _count(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


if __name__ == "__main__":
    sys.exit(main())
