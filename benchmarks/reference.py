"""The hand-rolled reference: what one competent script does with the same exports.

`benchmarks/run.py` times it beside every `chatsell sync`, so each results table gives
chatsell's time as a ratio of this script, measured in the same run on the same machine.

    python benchmarks/reference.py --chats DIR --sell DIR --db ref.db
    python benchmarks/reference.py --chats DIR --sell DIR --pg URL --schema ref_1

1. Sell: every lead and contact (a Smart List CSV, an API collection envelope or a JSON array,
   gzipped or not) into a dict normalized email -> records; deals by the contact they name.
2. Chats: every file with orjson (NDJSON line by line, a cut line skipped; a JSON document: an
   Incremental Export page or an array), the newest version of each chat id kept (by
   ``update_timestamp``), its transcript built from the history's messages.
3. The join: one activity per (chat, lead or contact with its email), and per deal of a matched
   contact; one new lead per distinct usable email that matches nothing (its earliest chat
   creates it), and an activity of each chat of that email on it.
4. A fresh store: SQLite with one ``executemany`` per table in one transaction (WAL,
   synchronous NORMAL, as chatsell's store), or a fresh PostgreSQL schema with one ``COPY``
   per table. Each table has its primary key.

The email key is the address stripped, NFKC-folded when it is not ASCII, lower-cased, without
``mailto:``; usable when it is a plain dot-atom address. No outcomes, no reports, no Sell
snapshot stored, no run bookkeeping, nothing incremental: the work done once, plainly, in one
process. It prints a JSON summary (counts and seconds per step) on stdout.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import re
import resource
import sys
import time
import unicodedata
from pathlib import Path

import orjson

_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
USABLE = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+[a-z](?:[a-z0-9-]{{0,61}}[a-z])?")
RESOURCES = {"lead": "lead", "contact": "contact", "deal": "deal"}
CSV_FIELDS = {"id": "id", "email": "email", "name": "name", "first name": "first_name",
              "last name": "last_name", "company name": "organization_name"}  # fmt: skip

ACTIVITIES = """CREATE TABLE activities (
    chat_id TEXT NOT NULL, record_type TEXT NOT NULL, record_id BIGINT NOT NULL,
    kind TEXT NOT NULL, started_at {ts} NOT NULL, ended_at {ts}, agent_names TEXT,
    visitor_name TEXT, record_name TEXT, department TEXT, tags TEXT, rating TEXT,
    message_count INTEGER, transcript TEXT,
    PRIMARY KEY (chat_id, record_type, record_id))"""
LEADS = """CREATE TABLE leads (
    id BIGINT PRIMARY KEY, email TEXT NOT NULL, email_normalized TEXT NOT NULL UNIQUE,
    name TEXT, phone TEXT, origin_chat_id TEXT NOT NULL, created_at {ts})"""
ACTIVITY_COLUMNS = ("chat_id, record_type, record_id, kind, started_at, ended_at, agent_names, "
                    "visitor_name, record_name, department, tags, rating, message_count, "
                    "transcript")  # fmt: skip
LEAD_COLUMNS = "id, email, email_normalized, name, phone, origin_chat_id, created_at"
INSERT_ACTIVITY = "INSERT INTO activities VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_LEAD = "INSERT INTO leads VALUES (?, ?, ?, ?, ?, ?, ?)"
FIRST_LEAD_ID = 900_000_000_001  # far from Sell's ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/reference.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--chats", required=True, help="Chat export file or directory")
    parser.add_argument("--sell", required=True, help="Sell export file or directory")
    parser.add_argument("--db", help="SQLite file to write (replaced)")
    parser.add_argument("--pg", help="PostgreSQL URL (default: $REFERENCE_PG_URL)")
    parser.add_argument("--schema", help="PostgreSQL schema to create and write into")
    args = parser.parse_args(argv)
    pg_url = args.pg or os.environ.get("REFERENCE_PG_URL")
    if bool(args.db) == bool(pg_url and args.schema):
        parser.error("give --db FILE, or --schema NAME with --pg URL (or $REFERENCE_PG_URL)")
    summary: dict = {}
    lap = Lap(summary)
    by_email, deals = read_sell(files(args.sell), summary)
    lap("sell_s")
    chats = read_chats(files(args.chats), by_email, summary)
    lap("chats_s")
    leads, lead_ids = join(chats, by_email, summary)
    lap("join_s")
    rows = activities(chats, by_email, deals, lead_ids, summary)
    if args.db:
        write_sqlite(Path(args.db), rows, leads)
    else:
        write_postgresql(pg_url, args.schema, rows, leads)
    lap("write_s")  # the activity rows are made as they are written: their time is in here
    summary["leads_created"] = len(leads)
    print(json.dumps(summary))
    return 0


class Lap:
    """Seconds since the previous lap, and the peak RSS so far, into the summary."""

    def __init__(self, summary: dict) -> None:
        self.summary, self.last = summary, time.perf_counter()

    def __call__(self, key: str) -> None:
        now = time.perf_counter()
        self.summary[key], self.last = round(now - self.last, 3), now
        # the peak RSS so far (Linux: KiB), to see which step holds the memory
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.summary[key.replace("_s", "_peak_mib")] = round(peak)


# -- reading ---------------------------------------------------------------------------------------


def files(root: str) -> list[Path]:
    path = Path(root)
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def email_key(raw: object) -> str | None:
    """The comparison key of an address, or None when it is not a usable one."""
    if type(raw) is not str:
        return None
    text = raw.strip()
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).strip()
    text = text.lower()
    if text.startswith("mailto:"):
        text = text[7:].strip()
    return text if USABLE.fullmatch(text) else None


def read_sell(paths: list[Path], summary: dict) -> tuple[dict, dict]:
    """(email key -> [(record type, id, name)], contact id -> [(deal id, name)])."""
    records: dict[tuple[str, int], tuple[str | None, str]] = {}
    deal_rows: dict[int, tuple[object, object, str]] = {}
    for path in paths:
        stem = path.name.lower().split(".")[0]
        kind = next((k for k in RESOURCES if stem.startswith(k)), None)
        if ".csv" in path.name.lower():
            if kind in ("lead", "contact"):
                for row in _csv_rows(path):
                    key = (kind, int(row["id"]))  # a record read twice: its first reading
                    records.setdefault(key, (email_key(row.get("email")), _name(row)))
            continue
        if not path.name.lower().endswith((".json", ".json.gz", ".jsonl", ".ndjson")):
            continue
        document = orjson.loads(read(path))
        items = document.get("items", []) if isinstance(document, dict) else document
        for item in items:
            data = item.get("data", item)
            meta = item.get("meta") if isinstance(item.get("meta"), dict) else {}
            record_kind = RESOURCES.get(meta.get("type")) or kind
            if record_kind == "deal":
                deal_rows[data["id"]] = (data.get("contact_id"), data.get("organization_id"),
                                         data.get("name") or "")  # fmt: skip
            elif record_kind in ("lead", "contact"):
                key = (record_kind, data["id"])
                records.setdefault(key, (email_key(data.get("email")), _name(data)))
    by_email: dict[str, list[tuple[str, int, str]]] = {}
    for (kind, record_id), (email, name) in records.items():
        if email is not None:
            by_email.setdefault(email, []).append((kind, record_id, name))
    deals: dict[int, list[tuple[int, str]]] = {}
    for deal_id, (contact_id, organization_id, name) in deal_rows.items():
        for owner in {contact_id, organization_id} - {None}:
            deals.setdefault(owner, []).append((deal_id, name))
    summary["sell_records"] = len(records)
    summary["deals"] = len(deal_rows)
    return by_email, deals


def _csv_rows(path: Path):
    reader = csv.reader(io.StringIO(read(path).decode("utf-8-sig"), newline=""))
    header = [label.strip().lower() for label in next(reader, [])]
    wanted = [(CSV_FIELDS[label], at) for at, label in enumerate(header) if label in CSV_FIELDS]
    for values in reader:
        if len(values) == len(header):
            yield {name: values[at].strip() for name, at in wanted}


def _name(record: dict) -> str:
    name = record.get("name")
    if name:
        return name
    full = " ".join(p for p in (record.get("first_name"), record.get("last_name")) if p)
    return full or record.get("organization_name") or ""


# a chat, as the join needs it
UPDATED, STARTED, ENDED, KIND, NAME, EMAIL, RAW_EMAIL, PHONE = range(8)
AGENTS, DEPARTMENT, TAGS, RATING, COUNT, TRANSCRIPT = range(8, 14)


def read_chats(paths: list[Path], by_email: dict, summary: dict) -> dict[str, tuple]:
    """chat id -> its newest version, reduced to what the join writes."""
    chats: dict[str, tuple] = {}
    reduce = Reducer(by_email)
    counts = {"versions": 0, "bad_lines": 0}
    for path in paths:
        if path.name.lower().startswith(("agents", "departments")):
            continue
        for chat in _chat_values(path, counts):
            counts["versions"] += 1
            chat_id = chat.get("id")
            if not chat_id or chat.get("deleted"):
                continue
            updated = chat.get("update_timestamp") or chat.get("end_timestamp") or ""
            known = chats.get(chat_id)
            if known is None or updated > known[UPDATED]:
                chats[chat_id] = reduce(chat, updated)
    summary["chat_versions_read"] = counts["versions"]
    summary["chats"] = len(chats)
    summary["lines_rejected"] = counts["bad_lines"]
    return chats


def _chat_values(path: Path, counts: dict):
    """The chats of one file, one at a time for NDJSON (a line cut short is counted, skipped)."""
    name = path.name.lower().removesuffix(".gz")
    if not name.endswith((".jsonl", ".ndjson")):
        document = orjson.loads(read(path))
        if isinstance(document, dict):
            document = document.get("chats", [document])
        yield from document
        return
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    loads = orjson.loads
    with (gzip.open if gzipped else open)(path, "rb") as lines:
        for line in lines:
            if line.isspace():
                continue
            try:
                value = loads(line)
            except orjson.JSONDecodeError:
                counts["bad_lines"] += 1
                continue
            yield value


class Reducer:
    """A chat as the join needs it: one tuple, the small repeated strings shared."""

    def __init__(self, by_email: dict) -> None:
        self.by_email = by_email
        self.shared: dict = {}

    def share(self, value):
        return self.shared.setdefault(value, value)

    def __call__(self, chat: dict, updated: str) -> tuple:
        share = self.share
        visitor = chat.get("visitor") or {}
        name = visitor.get("name") or ""
        lines = []
        for event in chat.get("history") or ():
            if event.get("type") == "chat.msg":
                text = str(event.get("msg", "")).replace("\n", " ")
                lines.append(f"{event.get('timestamp', '')[:19].replace('T', ' ')} "
                             f"{event.get('name', '')}: {text}")  # fmt: skip
        started = chat.get("timestamp")
        message = chat.get("message")
        if message and not lines:
            lines.append(f"{started[:19].replace('T', ' ')} {name or 'visitor'}: {message}")
        raw_email = visitor.get("email") or ""
        email = email_key(raw_email)
        return (
            updated,
            started,
            chat.get("end_timestamp") or started,
            share(chat.get("type") or "chat"),
            name,
            email,
            # the address as typed: for a new lead, and to tell an invalid one from none
            None if email in self.by_email else raw_email,
            visitor.get("phone") or None,
            share(orjson.dumps(chat.get("agent_names") or []).decode()),
            share(chat.get("department_name")),
            share(orjson.dumps(chat.get("tags") or []).decode()),
            share(chat.get("rating")),
            len(lines),
            "\n".join(lines),
        )


# -- the join --------------------------------------------------------------------------------------


def join(chats: dict, by_email: dict, summary: dict) -> tuple[list, dict]:
    """The new leads (one per unmatched usable email, created by its earliest chat) and, per
    such email, its lead's (id, name)."""
    first_chat: dict[str, tuple[str, str]] = {}  # new email -> (start, chat id) of its earliest
    matched = new = no_email = invalid = 0
    for chat_id, c in chats.items():
        email = c[EMAIL]
        if email is None:
            if c[RAW_EMAIL].strip():
                invalid += 1
            else:
                no_email += 1
        elif email in by_email:
            matched += 1
        else:
            new += 1
            known = first_chat.get(email)
            if known is None or (c[STARTED], chat_id) < known:
                first_chat[email] = (c[STARTED], chat_id)
    leads = []
    lead_ids: dict[str, tuple[int, str]] = {}
    creators = sorted((start, chat_id, email) for email, (start, chat_id) in first_chat.items())
    for number, (_start, chat_id, email) in enumerate(creators):
        c = chats[chat_id]
        name = c[NAME] if c[NAME] and not c[NAME].startswith("Visitor ") else email.split("@")[0]
        lead_id = FIRST_LEAD_ID + number
        lead_ids[email] = (lead_id, name)
        raw = c[RAW_EMAIL].strip()
        raw = raw[7:] if raw.lower().startswith("mailto:") else raw
        leads.append((lead_id, raw, email, name, c[PHONE], chat_id, c[ENDED]))
    summary.update(matched_chats=matched, new_lead_chats=new, no_email=no_email,
                   invalid_email=invalid)  # fmt: skip
    return leads, lead_ids


def activities(chats: dict, by_email: dict, deals: dict, lead_ids: dict, summary: dict):
    """One row per (chat, record it attaches to), made as the store takes them (not held)."""
    written = 0
    for chat_id, c in chats.items():
        email = c[EMAIL]
        if email is None:
            continue
        targets = by_email.get(email)
        if targets is None:
            lead_id, lead_name = lead_ids[email]
            targets = (("lead", lead_id, lead_name),)
        head = (c[KIND], c[STARTED], c[ENDED], c[AGENTS], c[NAME])
        tail = (c[DEPARTMENT], c[TAGS], c[RATING], c[COUNT], c[TRANSCRIPT])
        seen_deals = set()  # a deal that names two contacts of one email: once per chat
        for kind, record_id, record_name in targets:
            written += 1
            yield (chat_id, kind, record_id, *head, record_name, *tail)
            for deal_id, deal_name in deals.get(record_id, ()) if kind == "contact" else ():
                if deal_id not in seen_deals:
                    seen_deals.add(deal_id)
                    written += 1
                    yield (chat_id, "deal", deal_id, *head, deal_name, *tail)
    summary["activities"] = written


# -- writing ---------------------------------------------------------------------------------------


def write_sqlite(path: Path, activities: list, leads: list) -> None:
    import sqlite3

    for old in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        old.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute(ACTIVITIES.format(ts="TEXT"))
    con.execute(LEADS.format(ts="TEXT"))
    with con:
        con.executemany(INSERT_ACTIVITY, activities)
        con.executemany(INSERT_LEAD, leads)
    con.close()


def write_postgresql(url: str, schema: str, activities: list, leads: list) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
        con.execute(f'SET search_path TO "{schema}"')
        con.execute(ACTIVITIES.format(ts="TIMESTAMPTZ"))
        con.execute(LEADS.format(ts="TIMESTAMPTZ"))
        with con.cursor() as cur:
            for table, columns, rows in (("activities", ACTIVITY_COLUMNS, activities),
                                         ("leads", LEAD_COLUMNS, leads)):  # fmt: skip
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)


if __name__ == "__main__":
    sys.exit(main())
