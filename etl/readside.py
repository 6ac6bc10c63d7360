"""The read side: stored run reports, a record's chat feed, the Sell card export for Chat.

Sequencing only, like ``etl.run``: read from the store, shape with ``etl.transform``,
render or write with ``etl.report``.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import orjson
import pandas as pd

from etl.config import Settings
from etl.errors import ConfigError
from etl.load.store import FETCH_ROWS, Store
from etl.report.compare import compare_reports
from etl.report.digest import LIST_LIMIT, OutcomeDigest
from etl.report.files import write_report_files
from etl.report.render import DETAIL_COLUMNS, to_csv, write_csv
from etl.transform.normalize import email_key
from etl.transform.widgets import card_rows, csv_columns


def publish_report(
    settings: Settings, run_id: int | str, out_dir: Path, *, store: Store | None = None
) -> list[Path]:
    """Write a stored run's report as JSON and HTML into ``out_dir``; the files written."""
    own_store = store is None
    store = store or Store(settings.database_url.get_secret_value())
    try:
        store.prepare()
        row = store.run_row(run_id)
        if row is None or not row.get("report"):
            raise ConfigError(f"no finished run {run_id} to report")
        report = json.loads(row["report"])
        run = row["run_id"]
        return write_report_files(
            report,
            OutcomeDigest.from_store(*store.outcome_digest_rows(run)),
            store.reject_rows(run, limit=LIST_LIMIT),
            out_dir,
            store.reject_count(run),
        )
    finally:
        if own_store:
            store.dispose()


def export_widgets(
    settings: Settings, out: Path, fmt: str = "ndjson", *, store: Store | None = None
) -> int:
    """Write the Sell card data for Chat, per visitor email seen in chats; the number of cards."""
    own_store = store is None
    store = store or Store(settings.database_url.get_secret_value())
    try:
        store.prepare()
        emails = store.chat_emails()
        frames = store.card_records(emails)
        rows = card_rows(emails, frames["leads"], frames["contacts"], frames["users"], settings.widgets,
                         settings.match.converted_statuses)  # fmt: skip
    finally:
        if own_store:
            store.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        columns = csv_columns(settings.widgets)
        table = [
            [
                row["email_normalized"],
                row["card"],
                row["record_id"],
                *[row["fields"].get(c) for c in columns[3:]],
            ]
            for row in rows
        ]
        out.write_text(to_csv(columns, table), encoding="utf-8")
    else:
        with open(out, "wb") as handle:
            for row in rows:
                handle.write(orjson.dumps(row) + b"\n")
    return len(rows)


@dataclass
class Feed:
    """A record's chat feed, newest first; ``total`` is how many exist beyond ``limit``."""

    records: list[tuple[str, int]]
    items: pd.DataFrame
    total: int
    limit: int


_RECORD_REF = re.compile(r"^(lead|contact|deal):(-?\d+)$")


def read_feed(
    settings: Settings,
    ref: str,
    *,
    kind: str = "all",
    user: str | None = None,
    team: str | None = None,
    group: str | None = None,
    limit: int = 50,
    store: Store | None = None,
) -> Feed:
    """Chats and notes of ``lead:ID``, ``contact:ID``, ``deal:ID`` or every record of an email."""
    own_store = store is None
    store = store or Store(settings.database_url.get_secret_value())
    try:
        store.prepare()
        found = _RECORD_REF.match(ref.strip())
        if found:
            records = [(found.group(1), int(found.group(2)))]
            if records[0][0] == "lead" and not store.record_exists(*records[0]):
                pushed = store.lead_by_sell_id(records[0][1])  # a lead chatsell pushed to Sell
                records = [("lead", int(pushed))] if pushed is not None else records
            if not store.record_exists(*records[0]):
                raise ConfigError(f"no record {ref}")
        elif "@" in ref:
            key, _status = email_key(
                pd.Series([ref]), settings.match.provider_rules, settings.match.strip_plus_tags
            )
            records = store.records_by_email(key.iloc[0]) if key.iloc[0] else []
            if not records:
                raise ConfigError(f"no lead or contact has the email {ref}")
        else:
            raise ConfigError("RECORD is lead:ID, contact:ID, deal:ID or an email address")
        user_id = None
        if user is not None:
            user_id = store.user_id_for(user)
            if user_id is None:
                raise ConfigError(f"--user: no Sell user {user!r}")
        many = len(records) > 1
        items, total = store.feed(records, kind=kind, user_id=user_id, team=team, group=group,
                                  limit=1_000_000 if many else limit)  # fmt: skip
        if many and not items.empty:  # one email, several cards: each chat once
            items = items.drop_duplicates(["type", "chat_id"]).reset_index(drop=True)
            total = len(items)
            items = items.head(limit)
        return Feed(records, items, total, limit)
    finally:
        if own_store:
            store.dispose()


@dataclass
class StoredRun:
    """A finished run's report with its per-chat rows (or what its page shows of them), and
    optionally a comparison."""

    report: dict[str, Any]
    outcomes: pd.DataFrame | OutcomeDigest | None
    rejects: pd.DataFrame  # all, or the first LIST_LIMIT of ``reject_total``
    comparison: dict[str, Any] | None = None
    reject_total: int | None = None  # None: ``rejects`` holds them all


def load_run_report(
    settings: Settings,
    run_id: int | str = "latest",
    *,
    compare_to: int | str | None = None,
    store: Store | None = None,
    outcomes: Literal["rows", "digest"] | None = "rows",
) -> StoredRun:
    """The stored report of ``run_id`` (or the latest finished run) for rendering.

    ``outcomes``: "rows" (every chat's, and every reject: ``--details``), "digest" (what the
    HTML page shows: counts and the first rows of each list, read in bounded fetches) or None
    (the summary needs neither). A comparison reads both runs' rejects (the new ones are listed).
    """
    if outcomes not in ("rows", "digest", None):
        raise ValueError(f"outcomes: 'rows', 'digest' or None, not {outcomes!r}")
    own_store = store is None
    store = store or Store(settings.database_url.get_secret_value())
    try:
        store.prepare()
        current = _stored_report(store, run_id)
        run = current["run_id"]
        stored = StoredRun(current, None, pd.DataFrame())
        if outcomes == "rows" or compare_to is not None:
            stored.rejects = store.reject_rows(run)
        if outcomes == "rows":
            stored.outcomes = store.outcome_rows(run)
        elif outcomes == "digest":
            stored.outcomes = OutcomeDigest.from_store(*store.outcome_digest_rows(run))
            if compare_to is None:
                stored.rejects = store.reject_rows(run, limit=LIST_LIMIT)
            stored.reject_total = store.reject_count(run)
        if compare_to is not None:
            previous = _stored_report(store, compare_to)
            stored.comparison = compare_reports(
                current, previous, stored.rejects, store.reject_rows(previous["run_id"])
            )
        return stored
    finally:
        if own_store:
            store.dispose()


def write_details(
    settings: Settings,
    run_id: int | str,
    fmt: Literal["csv", "json"],
    out: TextIO,
    *,
    store: Store | None = None,
    size: int = FETCH_ROWS,
) -> int:
    """Every chat's outcome of a run (``DETAIL_COLUMNS``, in chat id order) written to ``out``
    as CSV (no cell a formula) or a JSON array, ``size`` rows read at a time: a million-chat
    run's details never held at once. The number of rows written."""
    own_store = store is None
    store = store or Store(settings.database_url.get_secret_value())
    try:
        store.prepare()
        run = _stored_report(store, run_id)["run_id"]

        def rows():
            for chunk in store.outcome_chunks(run, DETAIL_COLUMNS, size):
                values = [
                    chunk[c].astype(object).where(chunk[c].notna(), None) for c in DETAIL_COLUMNS
                ]
                yield from zip(*values, strict=True)

        if fmt == "csv":
            return write_csv(out, DETAIL_COLUMNS, rows())
        out.write("[")
        written = 0
        for row in rows():  # laid out as json.dumps(rows, indent=2) lays out the whole list
            record = json.dumps(dict(zip(DETAIL_COLUMNS, row, strict=True)), indent=2,
                                ensure_ascii=False)  # fmt: skip
            out.write(("\n" if not written else ",\n") + textwrap.indent(record, "  "))
            written += 1
        out.write("\n]\n" if written else "]\n")
        return written
    finally:
        if own_store:
            store.dispose()


def _stored_report(store: Store, run_id: int | str) -> dict[str, Any]:
    row = store.run_row(run_id)
    if row is None:
        raise ConfigError("no finished run yet" if run_id == "latest" else f"no run {run_id}")
    if row.get("report"):
        return json.loads(row["report"])
    return {  # a failed or unfinished run has no report: say what is known
        "run_id": row["run_id"], "mode": row["mode"], "status": row["status"],
        "started_at": str(row["started_at"]), "finished_at": str(row["finished_at"]), "error": row.get("error"),
    }  # fmt: skip
