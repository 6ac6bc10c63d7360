"""Realistic synthetic Zendesk Chat and Sell exports, for demos, tests and benchmarks.

``generate(out, chats, records, seed)`` writes ``out/chat/`` and ``out/sell/`` in the shapes the
real APIs give (``samples/``): gzipped Incremental Export pages plus some NDJSON files, agents and
departments; Sell collection pages of leads, contacts and deals, users, and one Smart List CSV.
The mix is the one a live account shows: most chats match a Sell email (some with case,
whitespace, full-width or ``mailto:`` noise), many have no email, a few an invalid one; visitors
come back; about 1% of chats come again in a later page with a newer ``update_timestamp``; about
0.1% of NDJSON lines are cut short.

Deterministic: the same arguments give byte-identical files. Each file is a pure function of the
seed and its place in a layout planned up front (no wall clock, gzip mtime 0), so files can be
written by several processes and still come out the same. Identities (names, emails, ids) are
pure functions of an index, so chats can name Sell records without holding them; a chat that a
later page writes again draws from its own ``random.Random``, so that page re-creates it instead
of keeping earlier pages in memory. Memory stays flat however many chats are asked for: one file
is built at a time per worker.
"""

from __future__ import annotations

import csv
import gzip
import io
import multiprocessing
import os
import re
import sys
import threading
import unicodedata
from bisect import bisect
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from random import Random
from typing import Any

import orjson

# -- the intended mix (per distinct chat) ------------------------------------------------------

OFFLINE_SHARE = 0.10  # type offline_msg: top-level "message", no history
SELL_MATCH_SHARE = 0.55  # visitor email is a Sell lead's or contact's
NO_EMAIL_SHARE = 0.20  # visitor email ""
INVALID_EMAIL_SHARE = 0.02  # "taro@", "not an email", ...
# the rest (~23%) are new visitors with an email no Sell record has
NOISY_SHARE = 0.12  # of Sell matches: case and whitespace noise
FULL_WIDTH_SHARE = 0.01  # of Sell matches: full-width characters
MAILTO_SHARE = 0.01  # of Sell matches: "mailto:" prefix
NEW_VISITOR_REPEAT = 0.7  # distinct new visitors per new-visitor chat (so some come back)
UPDATED_SHARE = 0.01  # chats written again, newer, in a later page
MALFORMED_SHARE = 0.001  # NDJSON lines cut short
NDJSON_EVERY = 10  # one file in ten is NDJSON (the 2nd, 12th, 22nd, ...)
NOTES_SHARE = 0.06
NOTIFY_SHARE = 0.03
JAPANESE_SHARE = 0.10
MISSED_SHARE = 0.04

LEAD_SHARE = 0.50  # of the Sell records; contacts 35%, deals 15%
DEAL_SHARE = 0.15
SELL_PAGE_SIZE = 10_000
CSV_SLICE = 1_000  # at most this many contacts also in contacts_export.csv

# Chats run over the year before PERIOD_END (the examples/ set ends on the same day).
PERIOD_END = datetime(2026, 11, 15, tzinfo=UTC)
PERIOD_DAYS = 365
ACCOUNT = "10414779"
SUBDOMAIN = "example-corp"
OWN_DOMAIN = "example-corp.example"
GZIP_LEVEL = 1  # level 6 makes pages ~25% smaller and the run ~2x slower
PARALLEL_FROM = 50_000  # chats + records; below this, spawning workers costs more than it saves

MANIFEST_NAME = "manifest.json"
GENERATOR = "chatsell.generate/1"  # bump when the same arguments would write different bytes
CSV_HEADER = [
    "Id", "First Name", "Last Name", "Company Name", "Email", "Phone", "Mobile", "Owner",
    "Status", "Source", "Tags", "Is Organization",
]  # fmt: skip
_OWN_FILES = re.compile(
    r"^(chats_.+\.(json|jsonl)(\.gz)?|agents\.json|departments\.json|"
    r"(leads|contacts|deals)_\d+\.json(\.gz)?|users\.json|contacts_export\.csv)$"
)


def generate(
    out: Path,
    chats: int,
    records: int,
    seed: int,
    *,
    gzip_pages: bool = True,
    pages_size: int = 1000,
    sell_page_size: int = SELL_PAGE_SIZE,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write synthetic exports into ``out/chat`` and ``out/sell``; return (and write) the manifest.

    ``chats`` distinct chats (the malformed NDJSON lines among them), ``records`` Sell leads,
    contacts and deals. ``pages_size`` chats per export file, ``sell_page_size`` items per Sell
    page; ``gzip_pages`` gzips both kinds of page. ``workers`` processes write files in parallel
    (default: one per CPU for large sets); the output does not depend on it. An ``out`` that already holds exports is refused unless
    ``overwrite``, which removes the files a previous ``generate`` wrote there (and only those).
    """
    if chats < 0 or records < 0:
        raise ValueError("chats and records must be >= 0")
    if pages_size < 1 or sell_page_size < 1:
        raise ValueError("pages_size and sell_page_size must be >= 1")
    out = Path(out)
    chat_dir, sell_dir = out / "chat", out / "sell"
    _prepare(out, (chat_dir, sell_dir), overwrite)
    plan = Plan.make(seed, chats, records, gzip_pages)
    blocks = plan_blocks(plan, pages_size)
    sell_tasks = plan_sell_pages(plan, sell_page_size)
    tasks: list[tuple[str, Any]] = [("chat", b) for b in blocks] + [("sell", t) for t in sell_tasks]
    if workers is None:
        workers = (os.cpu_count() or 1) if chats + records >= PARALLEL_FROM else 1
    results = _run_tasks(plan, str(out), tasks, max(1, workers))
    for name, data in _reference_files(plan).items():
        (out / name).write_bytes(data)
    manifest = _manifest(plan, pages_size, sell_page_size, blocks, results)
    (out / MANIFEST_NAME).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return manifest


def _prepare(out: Path, dirs: tuple[Path, ...], overwrite: bool) -> None:
    for directory in dirs:
        if directory.is_dir() and any(directory.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{directory} is not empty (overwrite=True replaces it)")
            for path in directory.iterdir():
                if path.is_file() and _OWN_FILES.match(path.name):
                    path.unlink()
        directory.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)


def _run_tasks(plan: Plan, out: str, tasks: list[tuple[str, Any]], workers: int) -> list[dict]:
    if workers == 1 or len(tasks) < 2:
        return [_write_task(plan, out, task) for task in tasks]
    # fork when it is safe (no other thread whose locks a child could inherit); spawn otherwise,
    # which re-imports the caller's __main__ (it then needs the `if __name__ == "__main__"` guard)
    methods = multiprocessing.get_all_start_methods()
    safe_fork = "fork" in methods and threading.active_count() == 1 and sys.platform == "linux"
    context = multiprocessing.get_context("fork" if safe_fork else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_write_task, [plan] * len(tasks), [out] * len(tasks), tasks))


def _write_task(plan: Plan, out: str, task: tuple[str, Any]) -> dict[str, Any]:
    kind, spec = task
    if kind == "chat":
        return _chat_maker(plan).write_block(Path(out), spec)
    return _sell_maker(plan).write_page(Path(out), spec)


# -- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Everything every file's content depends on."""

    seed: int
    chats: int
    records: int
    gzip_pages: bool
    leads: int
    contacts: int
    deals: int
    new_visitors: int  # size of the pool new-visitor emails are drawn from

    @classmethod
    def make(cls, seed: int, chats: int, records: int, gzip_pages: bool) -> Plan:
        leads = round(records * LEAD_SHARE)
        deals = round(records * DEAL_SHARE)
        new_share = 1 - SELL_MATCH_SHARE - NO_EMAIL_SHARE - INVALID_EMAIL_SHARE
        return cls(
            seed=seed,
            chats=chats,
            records=records,
            gzip_pages=gzip_pages,
            leads=leads,
            contacts=records - leads - deals,
            deals=deals,
            new_visitors=max(1, round(chats * new_share * NEW_VISITOR_REPEAT)),
        )


@dataclass(frozen=True)
class Block:
    """One chat export file: ``count`` new chats from ``first``, plus newer versions of others."""

    number: int  # 1-based, in time order
    ndjson: bool
    first: int
    count: int
    updates: tuple[int, ...] = ()  # chat indexes written again here, newer
    outgoing: tuple[int, ...] = ()  # chat indexes of this block a later block writes again
    malformed: tuple[int, ...] = ()  # offsets (in this block) of lines cut short


def plan_blocks(plan: Plan, pages_size: int) -> list[Block]:
    """The chat files in time order. Cheap: a few random draws per chat, no chat built."""
    blocks: list[Block] = []
    pending: dict[int, list[int]] = {}
    first_ndjson = True
    index = number = 0
    while index < plan.chats or pending:
        number += 1
        ndjson = number % NDJSON_EVERY == 2 and index < plan.chats
        if index >= plan.chats:  # no new chats left: the newer versions still due, in one go
            incoming = [i for key in sorted(pending) for i in pending.pop(key)]
        else:
            incoming = [] if ndjson else pending.pop(number, [])
        if ndjson and number in pending:
            pending.setdefault(number + 1, []).extend(pending.pop(number))
        if len(incoming) > pages_size:  # only with tiny pages: the rest go one page later
            pending.setdefault(number + 1, []).extend(incoming[pages_size:])
            incoming = incoming[:pages_size]
        count = min(pages_size - len(incoming), plan.chats - index)
        rng = Random(_seed(plan.seed, 1, number))
        malformed, outgoing = [], []
        for offset in range(count):
            draw = rng.random()
            cut = ndjson and (
                draw < MALFORMED_SHARE or (first_ndjson and offset == count // 2)
            )  # the first NDJSON file always holds one, so small sets show the case too
            if cut:
                malformed.append(offset)
            elif draw > 1 - UPDATED_SHARE:
                target = number + _rint(rng, 1, 3)
                pending.setdefault(target, []).append(index + offset)
                outgoing.append(index + offset)
        first_ndjson = first_ndjson and not ndjson
        blocks.append(
            Block(number, ndjson, index, count, tuple(incoming), tuple(outgoing), tuple(malformed))
        )
        index += count
    return blocks


@dataclass(frozen=True)
class SellPage:
    resource: str  # leads | contacts | deals
    number: int
    first: int
    count: int
    csv_rows: int = 0  # contacts page 1 also writes the Smart List CSV of its first rows


def plan_sell_pages(plan: Plan, page_size: int) -> list[SellPage]:
    pages = []
    for resource, total in (
        ("leads", plan.leads),
        ("contacts", plan.contacts),
        ("deals", plan.deals),
    ):
        for number, first in enumerate(range(0, total, page_size), start=1):
            csv_rows = 0
            if resource == "contacts" and number == 1:
                csv_rows = min(total, page_size, CSV_SLICE, max(20, total // 20))
            pages.append(SellPage(resource, number, first, min(page_size, total - first), csv_rows))
    return pages


# -- reference data: departments, agents, Sell users ------------------------------------------------

SALES_JP, SALES_EN, SUPPORT, BILLING = 1817700101, 1817700102, 1817700103, 1817700104
DEPARTMENTS = {
    SALES_JP: ("Sales JP", "Japanese-language sales enquiries"),
    SALES_EN: ("Sales EN", "English-language sales enquiries"),
    SUPPORT: ("Support", "Product support for existing customers"),
    BILLING: ("Billing", "Invoices, payments and plan changes"),
}
# id, email, display name, first, last, enabled, departments. Several are Sell users (some with
# another case of the same email); Mike, Sara, James, Kenji and Emma are not.
AGENTS = [
    (360001001, "alice.walker@example-corp.example", "Alice Walker", "Alice", "Walker", True, [SALES_EN, SUPPORT]),
    (360001002, "Taro.Kimura@Example-Corp.example", "Taro K.", "Taro", "Kimura", True, [SALES_JP]),
    (360001003, "hanako.sato@example-corp.example", "佐藤 花子", "花子", "佐藤", True, [SALES_JP]),
    (360001004, "mike.chen@support.example-corp.example", "Mike Chen", "Mike", "Chen", True, [SUPPORT]),
    (360001005, "sara.lopez@example-corp.example", "Sara Lopez", "Sara", "Lopez", False, [SUPPORT]),
    (360001006, "bob.martin@example-corp.example", "Bob Martin", "Bob", "Martin", True, [SALES_EN]),
    (360001007, "Carol.Nguyen@example-corp.example", "Carol N.", "Carol", "Nguyen", True, [SALES_EN, BILLING]),
    (360001008, "james.wright@example-corp.example", "James Wright", "James", "Wright", True, [SUPPORT, BILLING]),
    (360001009, "yuki.tanaka@example-corp.example", "田中 由紀", "由紀", "田中", True, [SALES_JP, SUPPORT]),
    (360001010, "olivia.brown@example-corp.example", "Olivia Brown", "Olivia", "Brown", True, [SALES_EN]),
    (360001011, "kenji.mori@example-corp.example", "Kenji Mori", "Kenji", "Mori", True, [SALES_JP]),
    (360001012, "emma.davis@example-corp.example", "Emma Davis", "Emma", "Davis", True, [SUPPORT]),
]  # fmt: skip
GROUPS = {201: "Inbound EN", 202: "Japan desk", 203: "Key accounts"}
TEAMS = {201: "Example Corp Sales", 202: "Example Corp Japan", 203: "Example Corp Enterprise"}
# id, name, email local part, group (None: no group), status, role
USERS = [
    (2100001, "Alice Walker", "alice.walker", 201, "active", "admin"),
    (2100002, "Bob Martin", "bob.martin", 201, "active", "user"),
    (2100003, "Carol Nguyen", "carol.nguyen", 201, "active", "user"),
    (2100004, "David Kim", "david.kim", 201, "active", "user"),
    (2100005, "Emily Stone", "emily.stone", 201, "active", "user"),
    (2100006, "Frank Miller", "frank.miller", 201, "active", "user"),
    (2100007, "Grace Lee", "grace.lee", 201, "active", "user"),
    (2100008, "Taro Kimura", "taro.kimura", 202, "active", "user"),
    (2100009, "佐藤 花子", "hanako.sato", 202, "active", "user"),
    (2100010, "田中 由紀", "yuki.tanaka", 202, "active", "user"),
    (2100011, "伊藤 翔太", "shota.ito", 202, "active", "user"),
    (2100012, "山田 芽衣", "mei.yamada", 202, "active", "user"),
    (2100013, "Henry Adams", "henry.adams", 203, "active", "admin"),
    (2100014, "Isla Clark", "isla.clark", 203, "active", "user"),
    (2100015, "Jack Turner", "jack.turner", 203, "active", "user"),
    (2100016, "Nora Price", "nora.price", 203, "active", "user"),
    (2100017, "Liam Scott", "liam.scott", 201, "active", "user"),
    (2100018, "Olivia Brown", "olivia.brown", 201, "inactive", "user"),
    (2100019, "Peter Hall", "peter.hall", 203, "inactive", "user"),
    (2100020, "Chat Integration", "chat-integration", None, "active", "user"),
]
INTEGRATION_USER = 2100020
ACTIVE_OWNERS = [u[0] for u in USERS if u[4] == "active" and u[0] != INTEGRATION_USER]
INACTIVE_OWNERS = [u[0] for u in USERS if u[4] == "inactive"]
USER_EMAILS = {u[0]: f"{u[2]}@{OWN_DOMAIN}" for u in USERS}


def _reference_files(plan: Plan) -> dict[str, bytes]:
    members: dict[int, list[int]] = {d: [] for d in DEPARTMENTS}
    for agent in AGENTS:
        for department in agent[6]:
            members[department].append(agent[0])
    departments = [
        {"id": d, "name": name, "description": text, "enabled": True, "members": members[d],
         "settings": {}}
        for d, (name, text) in DEPARTMENTS.items()
    ]  # fmt: skip
    agents = []
    for number, (agent_id, email, display, first, last, enabled, depts) in enumerate(AGENTS):
        agents.append(
            {"id": agent_id, "email": email, "display_name": display, "first_name": first,
             "last_name": last, "enabled": enabled, "departments": depts,
             "roles": {"owner": number == 0, "administrator": number == 0},
             "create_date": f"2024-{number % 12 + 1:02d}-0{number % 9 + 1}T09:00:00Z",
             "last_login": "2026-11-14T08:30:00Z", "login_count": 40 + 37 * number}
        )  # fmt: skip
    users = []
    for user_id, name, local, group, status, role in USERS:
        number = user_id - USERS[0][0]
        users.append(
            {"id": user_id, "name": name, "email": f"{local}@{OWN_DOMAIN}", "phone_number": None,
             "timezone": "Asia/Tokyo" if group == 202 else "America/Los_Angeles",
             "created_at": f"2024-{number % 12 + 1:02d}-01T09:00:00Z",
             "updated_at": f"2026-{number % 9 + 1:02d}-15T12:00:00Z", "confirmed": True,
             "deleted_at": None, "role": role, "roles": [], "status": status, "invited": True,
             "team_name": TEAMS.get(group or 0, "Example Corp Ops"),
             "group": {"id": group, "name": GROUPS[group]} if group else None,
             "reports_to": 2100013 if group == 203 and user_id != 2100013 else None,
             "confirmation_token": None}
        )  # fmt: skip
    users_page = {
        "items": [{"data": u, "meta": {"type": "user"}} for u in users],
        "meta": {"type": "collection", "count": len(users), "links": {}},
    }
    pretty = orjson.OPT_INDENT_2
    return {
        "chat/departments.json": orjson.dumps(departments, option=pretty) + b"\n",
        "chat/agents.json": orjson.dumps(agents, option=pretty) + b"\n",
        "sell/users.json": orjson.dumps(users_page, option=pretty) + b"\n",
    }


# -- names, places, words ------------------------------------------------------------------------

FIRST_NAMES = [
    "Emily",
    "Liam",
    "Olivia",
    "Noah",
    "Ava",
    "Ethan",
    "Sophia",
    "Lucas",
    "Mia",
    "Mason",
    "Isabella",
    "Logan",
    "Amelia",
    "Oliver",
    "Harper",
    "Elijah",
    "Evelyn",
    "James",
    "Abigail",
    "Benjamin",
    "Charlotte",
    "Daniel",
    "Grace",
    "Henry",
    "Chloe",
    "Jacob",
    "Lena",
    "Samuel",
    "Hannah",
    "Marco",
    "Priya",
    "Arjun",
    "Sofia",
    "Mateo",
    "Lucia",
    "Jonas",
    "Clara",
    "Felix",
    "Amara",
    "Kwame",
    "Ingrid",
    "Rafael",
    "Zoe",
    "Connor",
    "Aisha",
    "Diego",
    "Freya",
    "Tomasz",
    "Elena",
    "Omar",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Clarke",
    "Reyes",
    "Nair",
    "Patel",
    "Weber",
    "Rossi",
    "Dubois",
    "Fischer",
    "Hughes",
    "Bernard",
    "Thompson",
    "Grant",
    "Kim",
    "Martins",
    "Brooks",
    "Vogel",
    "O'Brien",
    "Miller",
    "Garcia",
    "Novak",
    "Jensen",
    "Silva",
    "Costa",
    "Moreau",
    "Schmidt",
    "Andersen",
    "Kowalski",
    "Murphy",
    "Walsh",
    "Okafor",
    "Haddad",
    "Lindqvist",
    "Ferreira",
    "Santos",
    "Bauer",
    "Hoffmann",
    "Romero",
    "Ivanova",
    "Chen",
    "Nguyen",
    "Kaur",
    "Mendes",
    "Larsen",
    "Byrne",
    "Duarte",
    "Khan",
    "Sato-Bennett",
    "Ward",
]
# family name, given name (kanji), family name, given name (romaji)
JP_NAMES = [
    ("鈴木", "健太", "suzuki", "kenta"), ("山田", "太郎", "yamada", "taro"),
    ("佐藤", "花子", "sato", "hanako"), ("中村", "さくら", "nakamura", "sakura"),
    ("山本", "健", "yamamoto", "ken"), ("伊藤", "亮", "ito", "ryo"),
    ("渡辺", "美咲", "watanabe", "misaki"), ("小林", "大輔", "kobayashi", "daisuke"),
    ("加藤", "陽菜", "kato", "hina"), ("吉田", "翔", "yoshida", "sho"),
    ("高橋", "結衣", "takahashi", "yui"), ("松本", "拓也", "matsumoto", "takuya"),
    ("井上", "真央", "inoue", "mao"), ("木村", "悠斗", "kimura", "yuto"),
    ("林", "葵", "hayashi", "aoi"), ("清水", "蓮", "shimizu", "ren"),
]  # fmt: skip
COMPANY_WORDS = [
    "Lumen",
    "Northwind",
    "Bluepeak",
    "Cedar",
    "Harbor",
    "Quartz",
    "Ember",
    "Atlas",
    "Summit",
    "Riverbend",
    "Silverline",
    "Brightwave",
    "Ironwood",
    "Meridian",
    "Pinecrest",
    "Oakridge",
    "Helix",
    "Solace",
    "Vantage",
    "Kestrel",
    "Orbit",
    "Granite",
    "Nimbus",
    "Tidewater",
    "Aurora",
    "Copperleaf",
    "Evergreen",
    "Beacon",
    "Falcon",
    "Horizon",
]
COMPANY_KINDS = [
    "Analytics",
    "Logistics",
    "Labs",
    "Health",
    "Foods",
    "Systems",
    "Retail",
    "Partners",
    "Media",
    "Energy",
    "Robotics",
    "Studio",
    "Consulting",
    "Dynamics",
    "Software",
    "Travel",
]
JP_COMPANIES = [
    ("株式会社さくら商事", "sakura-shoji"), ("富士テック株式会社", "fuji-tech"),
    ("株式会社みなと物流", "minato-butsuryu"), ("青葉システムズ株式会社", "aoba-systems"),
    ("株式会社ひかり食品", "hikari-foods"), ("東和電機株式会社", "towa-denki"),
]  # fmt: skip
FREE_DOMAINS = ("mail.example", "example.com", "example.org", "example.net", "inbox.example",
                "example.jp", "post.example")  # fmt: skip
INVALID_EMAILS = ("taro@", "not an email", "jane.doe@", "@example.com", "john..smith@example.com",
                  "mary@example", "info@@example.com", "hello at example dot com", "ｔａｒｏ＠")  # fmt: skip
# country code, name, [(city, region)], weight, phone format
COUNTRIES = [
    ("US", "United States", [("New York", "New York"), ("Austin", "Texas"), ("Seattle", "Washington"), ("Chicago", "Illinois")], 30),
    ("GB", "United Kingdom", [("London", "England"), ("Manchester", "England"), ("Edinburgh", "Scotland")], 14),
    ("DE", "Germany", [("Berlin", "Berlin"), ("Munich", "Bavaria"), ("Hamburg", "Hamburg")], 10),
    ("FR", "France", [("Paris", "Ile-de-France"), ("Lyon", "Auvergne-Rhone-Alpes")], 7),
    ("CA", "Canada", [("Toronto", "Ontario"), ("Vancouver", "British Columbia")], 7),
    ("AU", "Australia", [("Sydney", "New South Wales"), ("Melbourne", "Victoria")], 6),
    ("IN", "India", [("Bengaluru", "Karnataka"), ("Mumbai", "Maharashtra")], 8),
    ("ES", "Spain", [("Madrid", "Madrid"), ("Barcelona", "Catalonia")], 5),
    ("BR", "Brazil", [("Sao Paulo", "Sao Paulo")], 5),
    ("NL", "Netherlands", [("Amsterdam", "North Holland")], 4),
    ("SG", "Singapore", [("Singapore", "Singapore")], 4),
]  # fmt: skip
JAPAN = (
    "JP",
    "Japan",
    [("Tokyo", "Tokyo"), ("Osaka", "Osaka"), ("Nagoya", "Aichi"), ("Fukuoka", "Fukuoka")],
)
BROWSERS = [
    ("Chrome", "Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"),
    ("Safari", "Mac OS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15"),
    ("Edge", "Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0"),
    ("Firefox", "Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"),
    ("Mobile Safari", "iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1"),
    ("Chrome Mobile", "Android", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36"),
]  # fmt: skip
PAGES = [
    ("Pricing | Example Corp", "https://www.example-corp.example/pricing"),
    ("Book a demo | Example Corp", "https://www.example-corp.example/demo"),
    ("Help Center | Example Corp", "https://help.example-corp.example/hc/en-us"),
    ("Enterprise | Example Corp", "https://www.example-corp.example/enterprise"),
    ("Billing FAQ | Example Corp", "https://help.example-corp.example/hc/en-us/billing"),
    ("料金プラン | Example Corp", "https://www.example-corp.example/ja/pricing"),
]
REFERRERS = ("https://www.example.com/search?q=example+corp", "https://news.example.org/review",
             "https://www.example-corp.example/", "")  # fmt: skip
TAGS = ("pricing", "demo", "support", "billing", "trial", "enterprise", "api", "sso", "invoice",
        "onboarding", "upgrade", "bug")  # fmt: skip

EN_OPENERS = (
    "Hi, do you offer annual billing for the Team plan?",
    "Hello, I'd like to book a demo for my team of {n}.",
    "Can I change the owner of our account?",
    "Is there an API for exporting reports?",
    "We're comparing vendors. What would {n} seats cost per month?",
    "My last invoice shows the wrong company address.",
    "How long is the free trial, and do I need a card?",
    "Do you support single sign-on with Okta?",
    "Our dashboard has been loading very slowly since this morning.",
    "Is there a discount for non-profits?",
    "Can we host our data in the EU?",
    "I was charged twice this month, can you check?",
)
EN_FOLLOW_UPS = (
    "Great, thanks.", "Could you send me the details by email?",
    "And what about data residency in the EU?", "Sounds good.",
    "Thursday afternoon works for me.", "We'd start with about {n} users.",
    "Is onboarding included in that price?", "OK, and can we cancel any time?",
    "Perfect, that answers it.", "Let me check with my manager and come back to you.",
    "What's the difference with the Business plan?", "No, that's all. Thanks for your help!",
)  # fmt: skip
EN_GREETINGS = (
    "Hi {first}, thanks for reaching out! Let me check that for you.",
    "Hello! Happy to help with that.", "Hi there, thanks for waiting.",
    "Good question, {first}. One moment please.",
)  # fmt: skip
EN_ANSWERS = (
    "Yes, annual billing is available and saves about 15%.",
    "I can book a demo for you this week. What time suits you?",
    "Our API docs are at https://developer.example-corp.example, the reports endpoint is there.",
    "For {n} seats on the Team plan it would be ${price} per month.",
    "I've updated the address; the corrected invoice is on its way.",
    "The trial is 14 days and no card is needed.",
    "Yes, SSO with Okta and Azure AD is included in Business and Enterprise.",
    "Thanks for letting us know, our engineers are looking into it now.",
    "I've refunded the duplicate charge; it can take 5 to 10 days to show.",
    "I'll ask a colleague from sales to follow up with you by email.",
    "You're welcome! Is there anything else I can help with?",
    "I've sent the details to your email address.",
)
JA_OPENERS = (
    "こんにちは。料金プランについて教えてください。",
    "デモを予約したいのですが、可能でしょうか？",
    "請求書の宛名を変更したいです。",
    "{n}名で利用する場合の見積もりをお願いできますか？",
    "APIでレポートを出力できますか？",
    "無料トライアルの期間を教えてください。",
)
JA_FOLLOW_UPS = (
    "ありがとうございます。", "了解しました。", "はい、よろしくお願いします。",
    "メールで詳細を送っていただけますか？", "木曜日の午後でお願いします。",
    "導入支援は含まれていますか？", "社内で検討して、また連絡します。",
)  # fmt: skip
JA_GREETINGS = (
    "お問い合わせありがとうございます。担当の{agent}です。",
    "こんにちは。確認いたしますので少々お待ちください。",
)  # fmt: skip
JA_ANSWERS = (
    "年間契約の場合、約15%お得になります。",
    "デモは平日10時から18時まで承っております。",
    "詳細をメールでお送りいたします。",
    "{n}名の場合、月額{price}円となります。",
    "他にご不明な点はございますか？",
    "トライアル期間は14日間です。クレジットカードは不要です。",
)
MISSED_MESSAGES = ("Hello?", "Is anyone there?", "Hi, I have a question about pricing.",
                   "もしもし、どなたかいらっしゃいますか？")  # fmt: skip
OFFLINE_EN = (
    "Hi, please call me back about pricing for {n} seats. Thanks!",
    "I'd like a quote for the Enterprise plan. Best time to reach me is mornings.",
    "Our account was locked after a password reset, please help.",
    "Can someone from sales contact me about a demo next week?",
)
OFFLINE_JA = (
    "料金について折り返しご連絡をお願いします。",
    "来週デモをお願いしたいです。ご連絡ください。",
)  # fmt: skip
NOTES_EN = (
    "Asked for a callback on Tuesday.", "Interested in Enterprise; budget approved for Q3.",
    "Existing customer, wants to add {n} seats.", "Evaluating us against two other vendors.",
    "Prefers email over phone.",
)  # fmt: skip
NOTES_JA = ("来週月曜日に折り返し電話希望。", "年間契約を検討中。見積もり送付済み。")
COMMENTS = ("Very helpful, thanks!", "Quick and friendly.", "Took too long to get an answer.",
            "Great support as always.", "とても丁寧な対応でした。")  # fmt: skip
LEAD_STATUSES = (("New", 40), ("Working", 30), ("Unqualified", 18), ("Qualified", 12))
SOURCES = ("Website", "Referral", "Trade show", "Partner", "Cold call", "Chat")
INDUSTRIES = ("Software", "Retail", "Logistics", "Healthcare", "Manufacturing", "Finance",
              "Education", "Media")  # fmt: skip
TITLES = ("CEO", "CTO", "Head of Sales", "Operations Manager", "IT Director", "Office Manager",
          "Marketing Lead", "Procurement", "営業部長", "情報システム部")  # fmt: skip
STAGES = (11, 12, 13, 14, 15, 16)
CURRENCIES = (("USD", 70), ("EUR", 15), ("JPY", 15))
RATINGS = (("good", 25), ("bad", 5), (None, 70))

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_PAIRS = [a + b for b in _BASE62 for a in _BASE62]  # index = first + 62 * second
_B62_BYTES = bytes(ord(_BASE62[i % 62]) for i in range(256))
_FULL_WIDTH = {c: chr(c + 0xFEE0) for c in range(0x21, 0x7F)}
_PERIOD_START = int((PERIOD_END - timedelta(days=PERIOD_DAYS)).timestamp())
_SPAN = PERIOD_DAYS * 86400


# -- small deterministic helpers -----------------------------------------------------------------


def _seed(seed: int, stream: int, index: int) -> int:
    """The seed of one chat, block or page: distinct for every (stream, index) of a seed."""
    return (abs(seed) << 48) ^ (int(seed < 0) << 47) ^ (stream << 40) ^ index


def _hash32(*parts: int) -> int:
    """A well-mixed 32-bit hash of a few ints (murmur3 finalizer), for index -> identity."""
    h = 0x9747B28C
    for part in parts:
        h = (h ^ (part & 0xFFFFFFFFFFFF)) * 0x85EBCA6B & 0xFFFFFFFF
        h ^= h >> 13
        h = h * 0xC2B2AE35 & 0xFFFFFFFF
        h ^= h >> 16
    return h


def _spread(seed: int, key: int) -> bytes:
    """14 well-mixed bytes of a visitor key (the same visitor always gets the same id)."""
    return ((((_hash32(seed, 10, key) << 41) | key) * 0x5DEECE66D_2545F491) % 2**112).to_bytes(14)


def _b62_bytes(raw: bytes) -> str:
    """Bytes as base62-looking text (byte mod 62): for ids that need to look right, not be unique."""
    return raw.translate(_B62_BYTES).decode("ascii")


def _b62(value: int, width: int) -> str:
    """``width`` (even) base62 digits of ``value``, least significant first."""
    pairs = _B62_PAIRS
    chunks = []
    for _ in range(width // 2):
        value, digits = divmod(value, 3844)
        chunks.append(pairs[digits])
    return "".join(chunks)


class _Days(dict):
    """Day number since the epoch -> (YYYY-MM-DD, YYMM, YYMMDD), filled as days are met."""

    def __missing__(self, days: int) -> tuple[str, str, str]:
        date = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=days)
        value = date.strftime("%Y-%m-%d"), date.strftime("%y%m"), date.strftime("%y%m%d")
        self[days] = value
        return value


class _Clock(dict):
    """Second of the day -> "HH:MM:SS", filled as seconds are met."""

    def __missing__(self, second: int) -> str:
        value = self[second] = f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        return value


_DAYS, _CLOCK = _Days(), _Clock()
_MILLI = [f"{n:03d}" for n in range(1000)]


def _day(days: int) -> tuple[str, str, str]:
    return _DAYS[days]


def _iso(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    return f"{_DAYS[days][0]}T{_CLOCK[rest]}Z"


def _iso_us(micros: int) -> str:
    """ISO-8601 with six fraction digits, as history events carry them ("...44.807000Z": the Chat
    API keeps milliseconds). Formatting timestamps is the generator's hot path."""
    seconds, fraction = divmod(micros, 1_000_000)
    days, rest = divmod(seconds, 86400)
    return f"{_DAYS[days][0]}T{_CLOCK[rest]}.{_MILLI[fraction // 1000]}000Z"


def _tags(rng: Random, count: int) -> list[str]:
    """``count`` (0-2) distinct tags, sorted; rng.sample costs ten times more."""
    if count == 0:
        return []
    first = int(rng.random() * len(TAGS))
    if count == 1:
        return [TAGS[first]]
    second = (first + 1 + int(rng.random() * (len(TAGS) - 1))) % len(TAGS)
    return sorted((TAGS[first], TAGS[second]))


def _rint(rng: Random, low: int, high: int) -> int:
    """rng.randint, a third of the cost (the bias of float scaling is far below what shows)."""
    return low + int(rng.random() * (high - low + 1))


def _pick(rng: Random, options: tuple | list) -> Any:
    return options[int(rng.random() * len(options))]


class _Weighted:
    """A weighted choice among rows whose last item is the weight."""

    def __init__(self, rows: tuple | list) -> None:
        self.rows = list(rows)
        self.cumulative = list(accumulate(row[-1] for row in self.rows))
        self.total = self.cumulative[-1]

    def pick(self, rng: Random) -> Any:
        return self.rows[bisect(self.cumulative, rng.random() * self.total)]


_RATINGS, _LEAD_STATUSES, _CURRENCIES = (
    _Weighted(RATINGS),
    _Weighted(LEAD_STATUSES),
    _Weighted(CURRENCIES),
)


@lru_cache(maxsize=1024)
def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "", ascii_text.lower())


@dataclass(frozen=True, slots=True)
class Person:
    first: str
    last: str
    name: str  # as shown: "Emily Clarke", "鈴木 健太" or "鈴木健太"
    local: str  # email local part stem: "emily.clarke", "kenta.suzuki"
    japanese: bool


def _person(seed: int, stream: int, index: int) -> Person:
    h = _hash32(seed, stream, index)
    if h % 100 < JAPANESE_SHARE * 100:
        last, first, last_r, first_r = JP_NAMES[(h >> 8) % len(JP_NAMES)]
        name = f"{last} {first}" if (h >> 20) & 1 else f"{last}{first}"
        return Person(first, last, name, f"{first_r}.{last_r}", True)
    first = FIRST_NAMES[(h >> 8) % len(FIRST_NAMES)]
    last = LAST_NAMES[(h >> 16) % len(LAST_NAMES)]
    return Person(first, last, f"{first} {last}", f"{_slug(first)}.{_slug(last)}", False)


def _company(seed: int, index: int) -> tuple[str, str, bool]:
    """(name, email domain, Japanese) of company ``index``; the domain is unique per index."""
    h = _hash32(seed, 7, index)
    if h % 100 < JAPANESE_SHARE * 100:
        name, slug = JP_COMPANIES[(h >> 8) % len(JP_COMPANIES)]
        return name, f"{slug}{index}.example", True
    word = COMPANY_WORDS[(h >> 8) % len(COMPANY_WORDS)]
    kind = COMPANY_KINDS[(h >> 16) % len(COMPANY_KINDS)]
    return f"{word} {kind}", f"{_slug(word)}-{_slug(kind)}{index}.example", False


class _Identities:
    """Who the Sell records and the chat visitors are, as pure functions of their index.

    Email forms never collide across kinds: leads ``first.last<i>@``, contact persons
    ``flast<i>@`` (no dot), companies ``info@<unique domain>``, new visitors ``first_last<k>@``.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.seed = plan.seed

    def lead(self, index: int) -> tuple[Person, str | None, str]:
        """(person, email or None, organization name)."""
        person = _person(self.seed, 1, index)
        h = _hash32(self.seed, 2, index)
        company_index = self.plan.contacts + index  # a company no contact row holds
        company, domain, _ = _company(self.seed, company_index)
        if h % 3 == 0:
            domain = FREE_DOMAINS[(h >> 4) % len(FREE_DOMAINS)]
        email = None if index % 33 == 7 else f"{person.local}{index}@{domain}"
        return person, email, company

    def contact(self, index: int) -> tuple[bool, int, Person | None, str | None, str]:
        """(is company, company index, person or None, email, company name)."""
        company_index = index - index % 4
        company, domain, _ = _company(self.seed, company_index)
        if index % 4 == 0:
            return True, company_index, None, f"info@{domain}", company
        person = _person(self.seed, 3, index)
        local = person.local.split(".")
        email = f"{local[0][:1]}{local[-1]}{index}@{domain}"
        if index % 97 == 5 and self.plan.leads:  # also a lead: one email, two records
            shared = self.lead(index * 31 % self.plan.leads)[1]
            email = shared or email
        return False, company_index, person, email, company

    def contact_id(self, index: int) -> int:
        return 20_000_001 + index

    def lead_id(self, index: int) -> int:
        return 10_000_001 + index

    def visitor(self, key: int) -> tuple[Person, str]:
        person = _person(self.seed, 5, key)
        h = _hash32(self.seed, 6, key)
        local = person.local.replace(".", "_")
        return person, f"{local}{key}@{FREE_DOMAINS[h % len(FREE_DOMAINS)]}"


# -- chats ---------------------------------------------------------------------------------------


@dataclass
class _BlockStats:
    mix: Counter = field(default_factory=Counter)
    new_visitor_keys: list[int] = field(default_factory=list)


@lru_cache(maxsize=4)
def _chat_maker(plan: Plan) -> _ChatMaker:
    return _ChatMaker(plan)


class _ChatMaker:
    """Builds chat ``index`` from its own random stream, the same every time it is asked."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.ids = _Identities(plan)
        self.slot = _SPAN / max(plan.chats, 1)
        self.id_step = 0x2F6A_7B3C_9D5E_1 | 1  # odd and prime to 62: index -> id is one-to-one
        self.id_offset = _hash32(plan.seed, 9, 0) * 7919
        self.country_pick = _Weighted([(c, w) for c, *_, w in COUNTRIES])
        self.countries = {c: (name, cities) for c, name, cities, _ in COUNTRIES}
        members: dict[int, list[tuple[str, str]]] = {d: [] for d in DEPARTMENTS}
        for agent_id, _email, display, *_rest, depts in AGENTS:
            for department in depts:
                members[department].append((str(agent_id), display))
        self.members = members
        self.matchable = (plan.leads - plan.leads // 33 if plan.leads else 0) + plan.contacts

    def chat_id(self, index: int, start: int) -> str:
        value = (index * self.id_step + self.id_offset) % 62**10
        return f"{_day(start // 86400)[1]}.{ACCOUNT}.{_b62(value, 10)}"

    def build(
        self, index: int, stats: _BlockStats | None, rng: Random | None = None
    ) -> dict[str, Any]:
        """Chat ``index`` as the Chat API gives it; ``stats`` (when given) counts its mix.

        It draws from ``rng`` (its file's stream), or from a stream of its own when it is one of
        the chats a later file writes again: ``newer`` then re-creates it exactly.
        """
        if rng is None:
            rng = Random(_seed(self.plan.seed, 2, index))
        rand = rng.random
        start = _PERIOD_START + int(self.slot * (index + rand()))
        offline = rand() < OFFLINE_SHARE
        person, email, category, visitor_key = self._visitor(rng)
        japanese = person is not None and person.japanese
        if japanese or rand() < 0.02:
            code, (country_name, cities) = "JP", JAPAN[1:]
        else:
            code = self.country_pick.pick(rng)[0]
            country_name, cities = self.countries[code]
        city, region = cities[int(rand() * len(cities))]
        if person is None:
            name = f"Visitor {_hash32(self.plan.seed, 8, index) % 90_000_000 + 10_000_000}"
            if rand() < (0.7 if email else 0.25):  # a name typed into the pre-chat form
                who = _person(self.plan.seed, 4, index)
                name, japanese = who.name, who.japanese
        else:
            name = person.name
        phone = ""
        if email and rand() < 0.3:
            phone = _phone(rng, code)
        notes = ""
        if rand() < NOTES_SHARE:
            notes = (_pick(rng, NOTES_JA) if japanese else _pick(rng, NOTES_EN)).format(
                n=_rint(rng, 5, 80)
            )
        department = self._department(rng, japanese, code)
        tags = []
        if rand() < 0.4:
            tags = _tags(rng, 1 + (rand() < 0.3))
        if rand() < NOTIFY_SHARE * (1.5 if department != SUPPORT else 0.5):
            tags.append("notify_sales")
        visitor_id = f"{ACCOUNT}.{_b62_bytes(_spread(self.plan.seed, visitor_key))}"
        visitor = {"id": visitor_id, "name": name, "email": email, "phone": phone, "notes": notes}
        browser, platform, agent_string = BROWSERS[int(rand() * len(BROWSERS))]
        arrived = start - _rint(rng, 20, 900)
        day = _day(start // 86400)
        chat_id = self.chat_id(index, start)
        if stats is not None:
            mix = stats.mix
            mix[category] += 1
            if category == "new_visitor":
                stats.new_visitor_keys.append(visitor_key)
            mix["offline_msg" if offline else "chat"] += 1
            mix["with_notes"] += bool(notes)
            mix["notify_sales"] += "notify_sales" in tags
            mix["japanese_name"] += japanese
            mix["with_phone"] += bool(phone)
        title, url = PAGES[5 if japanese else int(rand() * 5)]
        webpath = [{"from": REFERRERS[int(rand() * len(REFERRERS))], "timestamp": _iso(arrived),
                    "title": title, "to": url}]  # fmt: skip
        if offline:
            session_end = start + _rint(rng, 30, 300)
            text = (_pick(rng, OFFLINE_JA) if japanese else _pick(rng, OFFLINE_EN)).format(
                n=_rint(rng, 5, 200)
            )
            return {
                "id": chat_id, "type": "offline_msg", "timestamp": _iso(start),
                "update_timestamp": _iso(start + _rint(rng, 1, 120)), "unread": rand() < 0.2,
                "deleted": False, "visitor": visitor,
                "session": self._session(code, country_name, city, region, browser, platform,
                                         agent_string, arrived, session_end, day, rng),
                "webpath": webpath, "department_id": department,
                "department_name": DEPARTMENTS[department][0] if department else None,
                "tags": tags, "message": text, "zendesk_ticket_id": None,
            }  # fmt: skip
        missed = rand() < MISSED_SHARE
        if stats is not None:
            stats.mix["missed"] += missed
        agents = [] if missed else self._agents(rng, department)
        history, counts, first_response, end_us = self._history(
            rng, start, name, agents, japanese, missed, visitor_id
        )
        end = end_us // 1_000_000 + 1
        rating = None if missed else _RATINGS.pick(rng)[0]
        comment = _pick(rng, COMMENTS) if rating and rand() < 0.3 else None
        if rating:
            history.insert(-1, {"name": name, "new_rating": rating, "rating": None,
                                "timestamp": _iso_us(end_us - 400_000), "type": "chat.rating",
                                "channel": history[0]["channel"]})  # fmt: skip
        avg = round(first_response * (1 + rand()), 3) if agents else None
        return {
            "id": chat_id, "type": "chat", "timestamp": _iso(start), "end_timestamp": _iso(end),
            "update_timestamp": _iso(end + _rint(rng, 5, 600)), "duration": end - start,
            "missed": missed, "unread": False, "deleted": False, "started_by": "visitor",
            "triggered": False, "triggered_response": None, "visitor": visitor,
            "session": self._session(code, country_name, city, region, browser, platform,
                                     agent_string, arrived, end, day, rng),
            "webpath": webpath, "referrer_search_engine": "", "referrer_search_terms": "",
            "agent_ids": [a for a, _ in agents], "agent_names": [n for _, n in agents],
            "department_id": department,
            "department_name": DEPARTMENTS[department][0] if department else None,
            "tags": tags, "rating": rating, "comment": comment,
            "count": counts,
            "response_time": {"first": first_response if agents else None, "avg": avg,
                              "max": int(avg * 2) if avg else None},
            "zendesk_ticket_id": None, "history": history,
        }  # fmt: skip

    def _visitor(self, rng: Random) -> tuple[Person | None, str, str, int]:
        """(person or None, email as typed, mix category, visitor key)."""
        draw = rng.random()
        if draw < SELL_MATCH_SHARE and self.matchable:
            person, email, key = self._sell_person(rng)
            noise = rng.random()
            if noise < FULL_WIDTH_SHARE:
                return person, email.translate(_FULL_WIDTH), "sell_match_full_width", key
            if noise < FULL_WIDTH_SHARE + MAILTO_SHARE:
                return person, f"mailto:{email}", "sell_match_mailto", key
            if noise < FULL_WIDTH_SHARE + MAILTO_SHARE + NOISY_SHARE:
                return person, _case_noise(rng, email), "sell_match_case_space", key
            return person, email, "sell_match", key
        draw -= SELL_MATCH_SHARE if self.matchable else 0
        if draw < NO_EMAIL_SHARE:
            return None, "", "no_email", rng.getrandbits(40)
        draw -= NO_EMAIL_SHARE
        if draw < INVALID_EMAIL_SHARE:
            return None, _pick(rng, INVALID_EMAILS), "invalid_email", rng.getrandbits(40)
        key = int(rng.random() * self.plan.new_visitors)
        person, email = self.ids.visitor(key)
        return person, email, "new_visitor", key

    def _sell_person(self, rng: Random) -> tuple[Person, str, int]:
        """(person, email, visitor key) of a random Sell lead or contact that has an email."""
        plan = self.plan
        while True:  # a lead without email is skipped: at most a few draws
            if plan.leads and (not plan.contacts or rng.random() < 0.6):
                index = int(rng.random() * plan.leads)
                person, email, _ = self.ids.lead(index)
                key = 2 * index
            else:
                index = int(rng.random() * plan.contacts)
                is_company, company_index, person, email, _ = self.ids.contact(index)
                if is_company:  # someone writing from the company's shared inbox
                    person = _person(self.plan.seed, 4, company_index)
                key = 2 * index + 1
            if email:
                return person, email, (1 << 41) + key  # type: ignore[return-value]

    def _department(self, rng: Random, japanese: bool, code: str) -> int | None:
        if japanese or code == "JP":
            return SALES_JP if rng.random() < 0.8 else SUPPORT
        draw = rng.random()
        if draw < 0.05:
            return None  # the visitor picked no department
        return SALES_EN if draw < 0.58 else SUPPORT if draw < 0.9 else BILLING

    def _agents(self, rng: Random, department: int | None) -> list[tuple[str, str]]:
        pool = self.members[department or SUPPORT]
        first = pool[int(rng.random() * len(pool))]
        if department == SUPPORT and rng.random() < 0.1:  # handed over to sales
            second = _pick(rng, self.members[SALES_EN])
            if second != first:
                return [first, second]
        return [first]

    def _session(self, code, country_name, city, region, browser, platform, agent_string,
                 arrived, end, day, rng) -> dict[str, Any]:  # fmt: skip
        return {
            "browser": browser, "city": city, "country_code": code, "country_name": country_name,
            "end_date": _iso(end), "id": f"{day[2]}.{ACCOUNT}.{_b62_bytes(rng.randbytes(14))}",
            "ip": f"{_pick(rng, ('192.0.2', '198.51.100', '203.0.113'))}.{_rint(rng, 1, 254)}",
            "platform": platform, "region": region, "start_date": _iso(arrived),
            "user_agent": agent_string,
        }  # fmt: skip

    def _history(self, rng, start, name, agents, japanese, missed, visitor_id):
        """(events, counts, first response seconds, last event time in microseconds).

        The hot loop of the generator: draws are inlined (``a + int(rand() * n)``) because a
        ``randint`` call costs more than the event it times.
        """
        rand = rng.random
        second = 1_000_000
        channel = f"#supportchat:{visitor_id.replace('.', '-')}"
        n = 1 + int(rand() * 2) if missed else 3 + int(rand() * 10)
        t = start * second - int(rand() * 900) * 1000
        history: list[dict[str, Any]] = [
            {"name": name, "timestamp": _iso_us(t), "department_name": None,
             "type": "chat.memberjoin", "channel": channel, "department_id": None}
        ]  # fmt: skip
        append = history.append
        t = start * second + int(rand() * 1000) * 1000
        if japanese:
            openers, follow_ups, greetings, answers = (
                JA_OPENERS,
                JA_FOLLOW_UPS,
                JA_GREETINGS,
                JA_ANSWERS,
            )
        else:
            openers, follow_ups, greetings, answers = (
                EN_OPENERS,
                EN_FOLLOW_UPS,
                EN_GREETINGS,
                EN_ANSWERS,
            )
        seats = 5 + int(rand() * 246)
        fill = {"n": seats, "price": f"{seats * 12:,}", "first": name.split()[0],
                "agent": agents[0][1] if agents else ""}  # fmt: skip
        visitor_count = agent_count = first_response = 0
        if missed:
            for _ in range(n):
                text = MISSED_MESSAGES[int(rand() * len(MISSED_MESSAGES))]
                append(_visitor_msg(name, t, text, channel, rand))
                visitor_count += 1
                t += (20 + int(rand() * 71)) * second
        else:
            text = _fill(openers[int(rand() * len(openers))], fill)
            append(_visitor_msg(name, t, text, channel, rand))
            visitor_count = agent_count = 1
            agent_name = agents[0][1]
            first_response = 5 + int(rand() * 86)
            t += first_response * second - (1 + int(rand() * 4)) * second
            append({"timestamp": _iso_us(t), "type": "chat.memberjoin", "name": agent_name,
                    "channel": channel})  # fmt: skip
            t += (1 + int(rand() * 4)) * second + int(rand() * 1000) * 1000
            text = _fill(greetings[int(rand() * len(greetings))], fill)
            append(_agent_msg(agent_name, t, text, channel))
            handover = len(agents) > 1 and n > 4
            for k in range(2, n):
                if handover and k == n // 2:
                    agent_name = agents[1][1]
                    t += (10 + int(rand() * 51)) * second
                    append({"timestamp": _iso_us(t), "type": "chat.memberjoin",
                            "name": agent_name, "channel": channel})  # fmt: skip
                t += (8 + int(rand() * 143)) * second + int(rand() * 1000) * 1000
                if k % 2 == 0 or rand() < 0.15:
                    text = _fill(follow_ups[int(rand() * len(follow_ups))], fill)
                    append(_visitor_msg(name, t, text, channel, rand))
                    visitor_count += 1
                else:
                    text = _fill(answers[int(rand() * len(answers))], fill)
                    append(_agent_msg(agent_name, t, text, channel))
                    agent_count += 1
            t += (5 + int(rand() * 56)) * second
            append({"timestamp": _iso_us(t), "type": "chat.memberleave", "name": agent_name,
                    "channel": channel})  # fmt: skip
        t += (2 + int(rand() * 29)) * second
        append({"name": name, "timestamp": _iso_us(t), "type": "chat.memberleave",
                "channel": channel})  # fmt: skip
        counts = {"visitor": visitor_count, "agent": agent_count,
                  "total": visitor_count + agent_count}  # fmt: skip
        return history, counts, first_response, t

    def newer(self, index: int, at_least: int) -> dict[str, Any]:
        """Chat ``index`` again, as a later export shows it: tagged for sales, updated later."""
        chat = self.build(index, None)
        updated = max(at_least, _epoch(chat["update_timestamp"])) + 60
        tag = "notify_sales" if "notify_sales" not in chat["tags"] else "follow_up"
        chat["tags"] = [*chat["tags"], tag]
        chat["update_timestamp"] = _iso(updated)
        if chat["type"] == "chat":
            if chat["rating"] is None and not chat["missed"]:
                chat["rating"] = "good"
            channel = chat["history"][0]["channel"]
            agent = chat["agent_names"][-1] if chat["agent_names"] else "Example Corp"
            chat["history"].append(
                {"name": agent, "tags": chat["tags"][:-1], "timestamp": _iso_us(updated * 1_000_000),
                 "new_tags": chat["tags"], "type": "chat.tag", "channel": channel}
            )  # fmt: skip
        return chat

    def write_block(self, out: Path, block: Block) -> dict[str, Any]:
        stats = _BlockStats()
        cut = set(block.malformed)  # a cut line is a reject, not a chat: not in the mix
        rng = Random(_seed(self.plan.seed, 6, block.number))
        again = set(block.outgoing)
        chats = [
            self.build(
                block.first + k,
                None if k in cut else stats,
                None if block.first + k in again else rng,
            )
            for k in range(block.count)
        ]
        if chats:
            latest = max(_epoch(c["update_timestamp"]) for c in chats)
        else:  # a last page of updates only
            latest = _PERIOD_START + _SPAN
        for number, index in enumerate(block.updates):
            chats.append(self.newer(index, latest + number))
        stats.mix["updated"] = len(block.updates)
        stats.mix["malformed"] = len(cut)
        if block.ndjson:
            name = f"chat/chats_{block.number:05d}.jsonl"
            lines = [orjson.dumps(c) for c in chats]
            for offset in block.malformed:
                line = lines[offset]
                keep = 20 + _hash32(self.plan.seed, 11, block.first + offset) % 60
                lines[offset] = line[: len(line) * keep // 100]  # cut short: never whole JSON
            data = b"\n".join(lines) + b"\n"
            stats.mix["ndjson_lines"] = len(chats)
        else:
            end_time = max(_epoch(c["update_timestamp"]) for c in chats)
            end_id = chats[-1]["id"]
            page = {
                "chats": chats,
                "count": len(chats),
                "end_id": end_id,
                "end_time": end_time,
                "next_page": f"https://{SUBDOMAIN}.zendesk.com/api/v2/chat/incremental/chats"
                f"?fields=chats%28%2A%29&limit=1000&start_time={end_time}&start_id={end_id}",
            }
            name = f"chat/chats_{end_time}_{block.number}.json"
            data = orjson.dumps(page)
            if self.plan.gzip_pages:
                name += ".gz"
                data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
        (out / name).write_bytes(data)
        return {"file": name, "records": len(chats), "mix": dict(stats.mix),
                "new_visitor_keys": stats.new_visitor_keys}  # fmt: skip


def _visitor_msg(name: str, t: int, text: str, channel: str, rand) -> dict[str, Any]:
    """A visitor's chat.msg: it carries a msg_id (an agent's does not)."""
    return {"name": name, "timestamp": _iso_us(t), "msg_id": str(t // 1000 + int(rand() * 1000)),
            "msg": text, "type": "chat.msg", "options": "", "channel": channel}  # fmt: skip


def _agent_msg(name: str, t: int, text: str, channel: str) -> dict[str, Any]:
    return {"name": name, "timestamp": _iso_us(t), "msg": text, "type": "chat.msg",
            "options": "", "channel": channel}  # fmt: skip


def _fill(text: str, values: dict[str, Any]) -> str:
    """A message template with its blanks filled; most have none, and skip the formatting."""
    return text.format_map(values) if "{" in text else text


def _case_noise(rng: Random, email: str) -> str:
    local, domain = email.split("@", 1)
    if rng.random() < 0.5:
        local = ".".join(p[:1].upper() + p[1:] for p in local.split("."))
    domain = domain.upper() if rng.random() < 0.3 else domain.title()
    return f"{' ' * _rint(rng, 0, 2)}{local}@{domain}{' ' * _rint(rng, 1, 2)}"


def _phone(rng: Random, code: str) -> str:
    if code == "JP":
        if rng.random() < 0.5:
            return f"090-{_rint(rng, 1000, 9999)}-{_rint(rng, 1000, 9999)}"
        return f"+81 3-{_rint(rng, 1000, 9999)}-{_rint(rng, 1000, 9999)}"
    if code == "GB":
        return f"+44 20 7946 0{_rint(rng, 0, 999):03d}"
    if code in ("US", "CA"):
        return f"+1 {_pick(rng, (206, 212, 415, 512, 416, 604))} 555 01{_rint(rng, 0, 99):02d}"
    if code == "DE":
        return f"+49 30 {_rint(rng, 1000000, 9999999)}"
    return f"+{_rint(rng, 30, 65)} {_rint(rng, 100, 999)} {_rint(rng, 1000, 9999)}"


def _epoch(iso_text: str) -> int:
    return int(datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp())


# -- Sell ----------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _sell_maker(plan: Plan) -> _SellMaker:
    return _SellMaker(plan)


class _SellMaker:
    """Sell records as pure functions of their index (the chats reuse the same identities)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.ids = _Identities(plan)

    def _owner(self, rng: Random) -> int:
        pool = INACTIVE_OWNERS if rng.random() < 0.03 else ACTIVE_OWNERS
        return pool[int(rng.random() * len(pool))]

    def _times(self, rng: Random) -> tuple[str, str]:
        created = _PERIOD_START - 2 * _SPAN + int(rng.random() * 2.8 * _SPAN)
        updated = created + int(rng.random() * (_PERIOD_START + _SPAN - 86400 - created))
        return _iso(created), _iso(updated)

    def _address(self, rng: Random, japanese: bool) -> dict[str, Any]:
        if japanese:
            city = _pick(rng, JAPAN[2])[0]
            return {"line1": f"{_rint(rng, 1, 9)}-{_rint(rng, 1, 30)}-{_rint(rng, 1, 20)}",
                    "city": city, "postal_code": f"{_rint(rng, 100, 999)}-{_rint(rng, 1000, 9999)}",
                    "state": "", "country": "Japan"}  # fmt: skip
        code, country, cities, _ = COUNTRIES[int(rng.random() * len(COUNTRIES))]
        city, region = _pick(rng, cities)
        return {"line1": f"{_rint(rng, 1, 999)} {_pick(rng, COMPANY_WORDS)} Street", "city": city,
                "postal_code": f"{_rint(rng, 10000, 99999)}", "state": region, "country": country}  # fmt: skip

    def lead(self, index: int, rng: Random) -> dict[str, Any]:
        person, email, company = self.ids.lead(index)
        created, updated = self._times(rng)
        return {
            "id": self.ids.lead_id(index), "creator_id": self._owner(rng), "owner_id": self._owner(rng),
            "first_name": person.first, "last_name": person.last, "organization_name": company,
            "status": _LEAD_STATUSES.pick(rng)[0], "source_id": None,
            "title": _pick(rng, TITLES) if rng.random() < 0.6 else None, "description": None,
            "industry": _pick(rng, INDUSTRIES), "website": None, "email": email,
            "phone": _phone(rng, "JP" if person.japanese else "US") if rng.random() < 0.6 else None,
            "mobile": None, "fax": None, "twitter": None, "facebook": None, "linkedin": None,
            "skype": None, "address": self._address(rng, person.japanese),
            "tags": _tags(rng, _rint(rng, 0, 2)),
            "custom_fields": {"Lead score": str(_rint(rng, 1, 100))} if rng.random() < 0.5 else {},
            "created_at": created, "updated_at": updated,
        }  # fmt: skip

    def contact(self, index: int, rng: Random) -> dict[str, Any]:
        is_company, company_index, person, email, company = self.ids.contact(index)
        created, updated = self._times(rng)
        japanese = person.japanese if person else bool(_company(self.plan.seed, company_index)[2])
        return {
            "id": self.ids.contact_id(index), "creator_id": self._owner(rng),
            "owner_id": self._owner(rng), "is_organization": is_company,
            "contact_id": None if is_company else self.ids.contact_id(company_index),
            "parent_organization_id": None,
            "name": company if is_company else person.name,
            "first_name": None if is_company else person.first,
            "last_name": None if is_company else person.last,
            "organization_name": None if is_company else company,
            "customer_status": _pick(rng, ("none", "current", "past")),
            "prospect_status": _pick(rng, ("none", "current", "lost")),
            "title": None if is_company else _pick(rng, TITLES), "description": None,
            "industry": _pick(rng, INDUSTRIES) if is_company else None,
            "website": f"https://www.{email.split('@')[1]}" if is_company and email else None,
            "email": email,
            "phone": _phone(rng, "JP" if japanese else "US") if rng.random() < 0.7 else None,
            "mobile": _phone(rng, "JP" if japanese else "US") if rng.random() < 0.2 else None,
            "fax": None, "twitter": None, "facebook": None, "linkedin": None, "skype": None,
            "address": self._address(rng, japanese),
            "tags": _tags(rng, _rint(rng, 0, 2)), "custom_fields": {},
            "created_at": created, "updated_at": updated,
        }  # fmt: skip

    def deal(self, index: int, rng: Random) -> dict[str, Any]:
        plan = self.plan
        contact_id = organization_id = None
        name = f"Deal {index + 1}"
        if plan.contacts:
            target = _hash32(plan.seed, 12, index) % plan.contacts
            is_company, company_index, _person_, _email, company = self.ids.contact(target)
            contact_id = self.ids.contact_id(target)
            organization_id = self.ids.contact_id(company_index)
            name = f"{company} - {_pick(rng, ('Team plan', 'Enterprise', 'Renewal', 'Expansion'))}"
        currency = _CURRENCIES.pick(rng)[0]
        amount = _rint(rng, 10, 900) * (1000 if currency == "JPY" else 100)
        created, updated = self._times(rng)
        return {
            "id": 30_000_001 + index, "creator_id": self._owner(rng), "owner_id": self._owner(rng),
            "name": name, "value": f"{amount}.00", "currency": currency, "hot": rng.random() < 0.2,
            "stage_id": _pick(rng, STAGES), "contact_id": contact_id,
            "organization_id": organization_id, "source_id": None, "loss_reason_id": None,
            "estimated_close_date": updated[:10], "customized_win_likelihood": None,
            "tags": _tags(rng, _rint(rng, 0, 1)), "custom_fields": {},
            "created_at": created, "updated_at": updated, "last_stage_change_at": updated,
        }  # fmt: skip

    def write_page(self, out: Path, page: SellPage) -> dict[str, Any]:
        stream = {"leads": 3, "contacts": 4, "deals": 5}[page.resource]
        rng = Random(_seed(self.plan.seed, stream, page.number))
        make = getattr(self, page.resource[:-1])
        records = [make(page.first + k, rng) for k in range(page.count)]
        kind = page.resource[:-1]
        base = f"https://api.getbase.com/v2/{page.resource}?page={{}}&per_page={page.count}"
        links = {"self": base.format(page.number)}
        last = page.first + page.count >= getattr(self.plan, page.resource)
        if not last:
            links["next_page"] = base.format(page.number + 1)
        envelope = {
            "items": [{"data": r, "meta": {"type": kind}} for r in records],
            "meta": {"type": "collection", "count": len(records), "links": links},
        }
        name = f"sell/{page.resource}_{page.number}.json"
        data = orjson.dumps(envelope)
        if self.plan.gzip_pages:
            name += ".gz"
            data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
        (out / name).write_bytes(data)
        result: dict[str, Any] = {"file": name, "records": len(records), "mix": {}}
        if page.resource == "contacts":
            result["mix"] = {"companies": sum(r["is_organization"] for r in records)}
        if page.csv_rows:
            (out / "sell/contacts_export.csv").write_bytes(self._csv(records[: page.csv_rows]))
            result["csv_rows"] = page.csv_rows
        return result

    @staticmethod
    def _csv(records: list[dict[str, Any]]) -> bytes:
        """A Smart List export of contacts: UI labels, UTF-8 with BOM, CRLF (as Sell writes it)."""
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(CSV_HEADER)
        for r in records:
            company = r["name"] if r["is_organization"] else r["organization_name"]
            status = "Customer" if r["customer_status"] == "current" else "Prospect"
            writer.writerow(
                [r["id"], r["first_name"] or "", r["last_name"] or "", company, r["email"] or "",
                 r["phone"] or "", r["mobile"] or "", USER_EMAILS[r["owner_id"]], status,
                 SOURCES[r["id"] % len(SOURCES)], ", ".join(r["tags"]), "true" if r["is_organization"] else "false"]
            )  # fmt: skip
        return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# -- the manifest --------------------------------------------------------------------------------


def _manifest(
    plan: Plan,
    pages_size: int,
    sell_page_size: int,
    blocks: list[Block],
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    chat_mix: Counter = Counter()
    sell_counts: Counter = Counter()
    files: dict[str, int] = {}
    seen_visitors = bytearray(plan.new_visitors)
    for result in results:
        files[result["file"]] = result["records"]
        if result["file"].startswith("chat/"):
            chat_mix.update(result["mix"])
            for key in result["new_visitor_keys"]:
                seen_visitors[key] = 1
        else:
            sell_counts.update(result["mix"])
            if "csv_rows" in result:
                files["sell/contacts_export.csv"] = result["csv_rows"]
    files.update({"chat/agents.json": len(AGENTS), "chat/departments.json": len(DEPARTMENTS),
                  "sell/users.json": len(USERS)})  # fmt: skip
    email_kinds = ("sell_match", "sell_match_case_space", "sell_match_full_width",
                   "sell_match_mailto", "new_visitor", "no_email", "invalid_email")  # fmt: skip
    emails = {k: chat_mix[k] for k in email_kinds}
    malformed = chat_mix["malformed"]
    new_visitor_emails = sum(seen_visitors)
    sell_matches = sum(v for k, v in emails.items() if k.startswith("sell_match"))
    return {
        "generator": GENERATOR,
        "seed": plan.seed,
        "params": {
            "chats": plan.chats,
            "records": plan.records,
            "gzip_pages": plan.gzip_pages,
            "pages_size": pages_size,
            "sell_page_size": sell_page_size,
        },  # fmt: skip
        "period": {"start": _iso(_PERIOD_START), "end": _iso(_PERIOD_START + _SPAN)},
        "chat": {
            "chats": plan.chats,  # distinct chat ids, the cut lines among them
            "records": sum(b.count + len(b.updates) for b in blocks),  # lines/items written
            "readable_chats": plan.chats - malformed,
            "updated": chat_mix["updated"],
            "malformed_lines": malformed,
            "pages": sum(not b.ndjson for b in blocks),
            "ndjson_files": sum(b.ndjson for b in blocks),
            "ndjson_lines": chat_mix["ndjson_lines"],
            "kinds": {"chat": chat_mix["chat"], "offline_msg": chat_mix["offline_msg"]},
            "missed": chat_mix["missed"],
            "emails": emails,
            "new_visitor_emails": new_visitor_emails,
            "with_notes": chat_mix["with_notes"],
            "notify_sales": chat_mix["notify_sales"],
            "with_phone": chat_mix["with_phone"],
            "japanese_names": chat_mix["japanese_name"],
            "agents": len(AGENTS),
            "agents_with_sell_user": sum(
                a[1].lower() in {e.lower() for e in USER_EMAILS.values()} for a in AGENTS
            ),
            "departments": len(DEPARTMENTS),
        },
        "sell": {
            "leads": plan.leads,
            "leads_without_email": sum(1 for i in range(7, plan.leads, 33)),
            "contacts": plan.contacts,
            "companies": sell_counts["companies"],
            "persons": plan.contacts - sell_counts["companies"],
            "deals": plan.deals,
            "users": len(USERS),
            "inactive_users": len(INACTIVE_OWNERS),
            "csv_contacts": files.get("sell/contacts_export.csv", 0),
            "integration_user": USER_EMAILS[INTEGRATION_USER],
        },
        "intended_mix": {
            "offline_msg": OFFLINE_SHARE,
            "sell_match": SELL_MATCH_SHARE,
            "no_email": NO_EMAIL_SHARE,
            "invalid_email": INVALID_EMAIL_SHARE,
            "new_visitor": round(1 - SELL_MATCH_SHARE - NO_EMAIL_SHARE - INVALID_EMAIL_SHARE, 4),
            "updated": UPDATED_SHARE,
            "malformed_ndjson_lines": MALFORMED_SHARE,
            "ndjson_files": 1 / NDJSON_EVERY,
            "with_notes": NOTES_SHARE,
            "notify_sales": NOTIFY_SHARE,
            "japanese_names": JAPANESE_SHARE,
        },  # fmt: skip
        # what a first `chatsell sync` with no lead policy (no ignore_domains, no max age) reports
        "expected_outcomes": {
            "matched": sell_matches,
            "lead_created": new_visitor_emails,
            "matched_new_lead": emails["new_visitor"] - new_visitor_emails,
            "no_email": emails["no_email"],
            "invalid_email": emails["invalid_email"],
            "rejected": malformed,
            "removed": 0,  # no generated chat is deleted at source
        },
        "files": files,
    }
