"""The Sell outbox (SPEC 9): the rows a plan's writes add, in the same transaction.

One row per thing Sell should see, keyed by what makes it that thing (``dedupe_key``, UNIQUE in
the table): a rerun, a resume after a kill or a Dask task that runs again adds nothing twice,
because the database refuses the second row, not because this code looked. The rows hold keys,
not content: ``push`` reads the current lead, activity, note or notification when it sends.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy.engine import Connection

from etl.load import schema
from etl.load.upsert import Rows, prepare_rows, upsert
from etl.vocab import NOTE_KIND, OUTBOX_COLUMNS, ChunkPlan


def outbox_rows(plan: ChunkPlan, activities: pd.DataFrame) -> pd.DataFrame:
    """The outbox rows of ``plan``; ``activities``: the activity rows it inserts or changes."""
    parts = []
    leads = plan.leads
    if not leads.empty:
        parts.append(pd.DataFrame({
            "kind": "lead", "record_type": "lead", "record_id": leads["id"].astype("int64"),
            "chat_id": leads["origin_chat_id"],
            "dedupe_key": "lead:" + leads["email_normalized"].astype(str),
            "payload": None,
        }))  # fmt: skip
    if not activities.empty:
        parts.append(
            _by_chat_record(activities, "activity", activities["content_hash"].astype(str))
        )
    notes = plan.notes[plan.notes["kind"] == NOTE_KIND] if not plan.notes.empty else plan.notes
    if not notes.empty:
        parts.append(_by_chat_record(notes, "note", None))
    if not plan.notifications.empty:
        parts.append(
            _by_chat_record(plan.notifications, "notification", plan.notifications["kind"])
        )
    phones = plan.phone_changes
    if not phones.empty:
        phones = phones[phones["field"] == "phone"]
        parts.append(pd.DataFrame({
            "kind": "phone", "record_type": phones["record_type"],
            "record_id": phones["record_id"].astype("int64"), "chat_id": phones["chat_id"],
            "dedupe_key": "phone:" + phones["record_type"] + ":" + phones["record_id"].astype("int64").astype(str)
            + ":" + phones["chat_id"],
            "payload": [json.dumps({"old": _text(o), "new": _text(n)})
                        for o, n in zip(phones["old_value"], phones["new_value"], strict=True)],
        }))  # fmt: skip
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=list(OUTBOX_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(OUTBOX_COLUMNS)]


def add_to_outbox(conn: Connection, run_id: int, rows: pd.DataFrame | list[Rows]) -> None:
    """Add the rows the table does not hold yet (by ``dedupe_key``); the others stay as they are.
    ``rows``: ``outbox_rows``, or what ``prepare_outbox`` made of them."""
    parts = rows if isinstance(rows, list) else prepare_outbox(run_id, rows, conn.dialect.name)
    for part in parts:
        upsert(conn, schema.sell_outbox, part, key=["dedupe_key"])


def prepare_outbox(run_id: int, rows: pd.DataFrame, dialect: str) -> list[Rows]:
    """``outbox_rows`` as the driver takes them, the leads first: push sends oldest first, so a
    lead is in Sell before the rows about it (an upsert writes in key order, which would put
    ``activity:`` before ``lead:``)."""
    if rows.empty:
        return []
    constants = {"status": "pending", "attempts": 0, "created_run_id": run_id,
                 "created_at": datetime.now(UTC)}  # fmt: skip
    leads = (rows["kind"] == "lead").to_numpy()
    return [
        prepare_rows(part, schema.sell_outbox, ["dedupe_key"], dialect, constants)
        for part in ((rows[leads], rows[~leads]) if leads.any() else (rows,))
    ]


def _by_chat_record(frame: pd.DataFrame, kind: str, suffix: pd.Series | None) -> pd.DataFrame:
    record_id = frame["record_id"].astype("int64")
    key = kind + ":" + frame["chat_id"] + ":" + frame["record_type"] + ":" + record_id.astype(str)
    if suffix is not None:
        key = key + ":" + suffix
    return pd.DataFrame({
        "kind": kind, "record_type": frame["record_type"], "record_id": record_id,
        "chat_id": frame["chat_id"], "dedupe_key": key, "payload": None,
    })  # fmt: skip


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
