"""Idempotent writers: each takes an open transaction and applies part of a plan.

Whether a row is new, changed or the same is decided by the database: natural keys are
constraints, upserts carry their guard (an older chat version never overwrites a newer one; an
unchanged Sell record is not rewritten). The pre-selects here only count what the statements do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, func, literal_column, or_, select, text, update
from sqlalchemy.engine import Connection

from etl.errors import RunFailed
from etl.load import schema
from etl.load.upsert import Rows, dedupe, dialect_insert, select_in, upsert
from etl.vocab import CHAT_COLUMNS, RunCounters, WriteCounts

if TYPE_CHECKING:
    import pandas as pd

SELL_TABLES = {
    "leads": schema.leads,
    "contacts": schema.contacts,
    "deals": schema.deals,
    "users": schema.users,
    "notes": schema.sell_notes,
    "lead_conversions": schema.lead_conversions,
}
# Fields chatsell itself fills (phone updates, seed S10): an export without a value never empties them.
KEEP_WHEN_EXPORT_EMPTY = ("phone",)


@dataclass
class ActivityWrites:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


def apply_sell(conn: Connection, run_id: int, changes: dict[str, pd.DataFrame]) -> None:
    """Upsert new or changed Sell records by id; the guard skips a row whose hash is the same."""
    for resource, frame in changes.items():
        if frame.empty:
            continue
        table = SELL_TABLES[resource]
        frame = frame.assign(imported_run_id=run_id)
        columns = [c for c in frame.columns if c in table.c and c != "id"]
        stmt_table = table
        set_ = {}
        for name in KEEP_WHEN_EXPORT_EMPTY:
            if name in columns:
                excluded = dialect_insert(conn, table).excluded
                set_[name] = func.coalesce(
                    func.nullif(excluded[name], literal_column("''")), stmt_table.c[name]
                )
        upsert(
            conn,
            table,
            frame[["id", *columns]],
            key=["id"],
            update=columns,
            where=table.c.sell_hash.is_distinct_from(
                dialect_insert(conn, table).excluded.sell_hash
            ),
            set_=set_,
        )


def delete_missing(conn: Connection, resource: str, keep_ids: Iterable[int]) -> int:
    """For a complete snapshot: delete Sell records of ``resource`` not in it (chat-created leads stay)."""
    table = SELL_TABLES[resource]
    keep = set(keep_ids)
    existing = {r[0] for r in conn.execute(table.select().with_only_columns(table.c.id))}
    if resource == "leads":
        chat_made = {
            r[0]
            for r in conn.execute(
                table.select().with_only_columns(table.c.id).where(table.c.origin == "chat")
            )
        }
        existing -= chat_made
    gone = sorted(existing - keep)
    for start in range(0, len(gone), 5000):
        conn.execute(delete(table).where(table.c.id.in_(gone[start : start + 5000])))
    return len(gone)


def queue_rematch(conn: Connection, run_id: int, emails: Iterable[str]) -> None:
    """Remember emails whose records changed, where the store holds chats of that email: the run
    attaches those chats to the new records (in this transaction's run, or after a crash)."""
    import pandas as pd  # noqa: PLC0415

    candidates = sorted(set(emails))
    if not candidates:
        return
    chats = schema.chats
    # this run's chats are matched already: only the emails of other runs' chats come back
    stmt = (
        select(chats.c.email_normalized)
        .where(
            chats.c.email_normalized.in_(bindparam("emails", expanding=True)),
            chats.c.run_id.is_distinct_from(run_id),
        )
        .distinct()
    )
    found: set[str] = set()
    for start in range(0, len(candidates), 5000):
        part = candidates[start : start + 5000]
        found.update(row[0] for row in conn.execute(stmt, {"emails": part}))
    frame = pd.DataFrame({"email_normalized": sorted(found)})
    upsert(conn, schema.rematch_queue, frame, key=["email_normalized"],
           constants={"queued_run_id": run_id})  # fmt: skip


def clear_rematch(conn: Connection, emails: Iterable[str]) -> None:
    emails = sorted(set(emails))
    table = schema.rematch_queue
    for start in range(0, len(emails), 5000):
        conn.execute(
            delete(table).where(table.c.email_normalized.in_(emails[start : start + 5000]))
        )


def apply_reference(conn: Connection, agents: pd.DataFrame, departments: pd.DataFrame) -> None:
    """Chat agents and departments: the newest export wins."""
    upsert(
        conn,
        schema.agents,
        agents,
        key=["agent_id"],
        update=[c for c in agents.columns if c != "agent_id"],
    )
    upsert(
        conn,
        schema.departments,
        departments,
        key=["department_id"],
        update=[c for c in departments.columns if c != "department_id"],
    )


def record_rejects(
    conn: Connection, run_id: int, rejects: pd.DataFrame, outcomes: pd.DataFrame
) -> None:
    """Rejects of a run and, for rejected chat records, their ``rejected`` outcome."""
    upsert(
        conn,
        schema.rejects,
        rejects.assign(run_id=run_id),
        key=["run_id", "source_file", "position"],
    )
    upsert(conn, schema.run_outcomes, outcomes.assign(run_id=run_id), key=["run_id", "chat_id"])


CHAT_WRITE_COLUMNS = tuple(
    c for c in (*CHAT_COLUMNS, "email_normalized", "plan_key") if c != "chat_id"
)


def chat_versions(conn: Connection, chat_ids: Iterable[str]) -> pd.DataFrame:
    """(chat_id, version, email_normalized, plan_key) of the chats among these the store
    holds; a chat stored without a plan key has 0 (keys are 64-bit: a missing one read as NaN
    would make the column float, which holds 53 bits)."""
    columns = ["chat_id", "version", "email_normalized", "plan_key"]
    no_key = {"plan_key": func.coalesce(schema.chats.c.plan_key, 0)}
    return select_in(conn, schema.chats, ["chat_id"], chat_ids, columns, no_key)


def plan_key_changes(
    chats: pd.DataFrame, stored: pd.DataFrame, written: pd.DataFrame
) -> pd.DataFrame:
    """(chat_id, plan_key) of the plan's chats the store holds at the same version, whose row
    is not written again (``written``: ``chat_rows``) and whose stored key differs: the key
    of the rows written with them now (``etl.transform.plankey``)."""
    import pandas as pd  # noqa: PLC0415

    if stored.empty or "plan_key" not in chats:
        return pd.DataFrame(columns=["chat_id", "version", "plan_key"])
    both = chats[["chat_id", "version", "plan_key"]].merge(
        stored[["chat_id", "version", "plan_key"]], on="chat_id", suffixes=("", "_stored")
    )
    changed = (
        (both["version"] == both["version_stored"])
        & (both["plan_key"] != both["plan_key_stored"])
        & ~both["chat_id"].isin(set(written["chat_id"]))
    )
    return both.loc[changed, ["chat_id", "version", "plan_key"]].reset_index(drop=True)


def write_plan_keys(conn: Connection, keys: pd.DataFrame) -> None:
    """``plan_key_changes``, written (at the same version only: a version that replaced it
    keeps its own key)."""
    if keys.empty:
        return
    table = schema.chats
    conn.execute(
        update(table)
        .where(table.c.chat_id == bindparam("b_chat_id"), table.c.version == bindparam("b_version"))
        .values(plan_key=bindparam("b_plan_key")),
        [
            {"b_chat_id": chat_id, "b_version": version, "b_plan_key": int(key)}
            for chat_id, version, key in zip(
                keys["chat_id"], keys["version"], keys["plan_key"], strict=True
            )
        ],
    )


def chat_rows(
    chats: pd.DataFrame, stored: pd.DataFrame, activities: pd.DataFrame | None
) -> pd.DataFrame:
    """The chat rows a plan writes: those the store does not hold as they are.

    ``activities``: the activities written with these chats in this transaction. A chat with one
    keeps its transcript there only: the chat row's is NULL, and ``Store.stored_chats`` reads it
    back from the activity (every activity of a chat holds the transcript of the chat's stored
    version, and none is removed unless a newer version replaces the row). Half the bytes of a
    first load are transcripts; this writes each once.
    """
    chats = chats[["chat_id", *CHAT_WRITE_COLUMNS]]  # one copy, edited in place below
    if activities is not None and not activities.empty:
        held = chats["chat_id"].isin(set(activities["chat_id"])).to_numpy()
        if held.any():
            chats["transcript"] = chats["transcript"].where(~held, None)
    if not stored.empty:  # skip rows the guard below would refuse anyway (a --full run writes none)
        both = chats[["chat_id", "version", "email_normalized"]].merge(
            stored, on="chat_id", how="left", suffixes=("", "_stored")
        )
        same = both["version"] == both["version_stored"]
        new_email = both["email_normalized"].fillna("") != both["email_normalized_stored"].fillna(
            ""
        )
        needed = (
            both["version_stored"].isna()
            | (both["version"] > both["version_stored"])
            | (same & new_email)
        )
        if not needed.all():
            chats = chats[needed.to_numpy()]
    return chats


def write_chats(conn: Connection, run_id: int, chats: pd.DataFrame | Rows) -> None:
    """``chat_rows`` (or their ``prepare_rows``, with the run id), written: an older version
    never overwrites a newer one, and the same version only to change its email."""
    table = schema.chats
    excluded = dialect_insert(conn, table).excluded
    upsert(
        conn,
        table,
        chats,
        key=["chat_id"],
        update=[*CHAT_WRITE_COLUMNS, "run_id"],
        constants={"run_id": run_id},
        where=or_(
            excluded.version > table.c.version,
            and_(
                excluded.version == table.c.version,
                excluded.email_normalized.is_distinct_from(table.c.email_normalized),
            ),
        ),
    )


def classify_activities(
    planned: pd.DataFrame, existing: pd.DataFrame, chat_versions: pd.DataFrame
) -> tuple[pd.DataFrame, ActivityWrites, pd.DataFrame]:
    """(rows to upsert, counts, stale keys to delete) for a chunk's planned activities.

    Stale: an activity of a chat whose newer version no longer attaches to that record.
    """
    import pandas as pd  # noqa: PLC0415

    key = ["chat_id", "record_type", "record_id"]
    counts = ActivityWrites()
    if not existing.empty:
        existing = existing.astype({"record_id": "int64"})
    merged = planned.merge(existing, on=key, how="left", suffixes=("", "_old"), indicator=True)
    new = merged["_merge"] == "left_only"
    changed = (
        (merged["_merge"] == "both")
        & (merged["content_hash"] != merged["content_hash_old"])
        & (merged["chat_version"] >= merged["chat_version_old"])
    )
    counts.inserted = int(new.sum())
    counts.updated = int(changed.sum())
    counts.unchanged = int(len(merged) - counts.inserted - counts.updated)
    writes = planned[(new | changed).to_numpy()]
    stale = pd.DataFrame(columns=key)
    if not existing.empty:
        old = existing.merge(chat_versions, on="chat_id", suffixes=("", "_new"))
        old = old[old["version"] > old["chat_version"]]
        if not old.empty:
            still = old.merge(planned[key], on=key, how="left", indicator=True)
            stale = still.loc[still["_merge"] == "left_only", key]
    counts.removed = len(stale)
    return writes, counts, stale


def write_activities(conn: Connection, rows: pd.DataFrame | Rows, stale: pd.DataFrame) -> None:
    """``classify_activities``' rows (or their ``prepare_rows``) and stale keys, written."""
    table = schema.activities
    excluded = dialect_insert(conn, table).excluded
    columns = [c for c in rows.columns if c not in ("chat_id", "record_type", "record_id")]
    upsert(
        conn,
        table,
        rows,
        key=["chat_id", "record_type", "record_id"],
        update=columns,
        where=and_(
            excluded.chat_version >= table.c.chat_version,
            excluded.content_hash != table.c.content_hash,
        ),
    )
    for chat_id, record_type, record_id in stale.itertuples(index=False, name=None):
        conn.execute(
            delete(table).where(
                table.c.chat_id == chat_id,
                table.c.record_type == record_type,
                table.c.record_id == int(record_id),
            )
        )


def remove_chat_content(conn: Connection, chat_ids: Iterable[str]) -> int:
    """Everything derived from these chats (deleted at source, SPEC 10): their activities,
    notes and notifications, and the outbox rows about those not sent yet (``pending``). A
    lead one of them created stays (a CRM record), and so do its outbox row and the phone
    changes they made (the records' own history). Returns the activities deleted (a newer
    version's stale ones are deleted before, by ``write_activities``)."""
    ids = sorted(set(chat_ids))
    outbox = schema.sell_outbox
    removed = 0
    for start in range(0, len(ids), 5000):
        part = ids[start : start + 5000]
        for table in (schema.activities, schema.notes, schema.notifications):
            deleted = conn.execute(delete(table).where(table.c.chat_id.in_(part)))
            if table is schema.activities:
                removed += deleted.rowcount
        conn.execute(
            delete(outbox).where(
                outbox.c.chat_id.in_(part),
                outbox.c.kind.in_(("activity", "note", "notification")),
                outbox.c.status == "pending",
            )
        )
    return removed


def delete_chats(conn: Connection, chat_ids: Iterable[str]) -> None:
    """These chats' rows (an erased person's, SPEC 10: the store keeps not even their id)."""
    ids = sorted(set(chat_ids))
    for start in range(0, len(ids), 5000):
        conn.execute(
            delete(schema.chats).where(schema.chats.c.chat_id.in_(ids[start : start + 5000]))
        )


def write_outcomes(conn: Connection, run_id: int, outcomes: pd.DataFrame | Rows) -> None:
    """One row per chat per run; a resumed run never rewrites an outcome already recorded.
    (``outcomes``: or their ``prepare_rows``, with the run id.)"""
    upsert(conn, schema.run_outcomes, outcomes, key=["run_id", "chat_id"],
           constants={"run_id": run_id})  # fmt: skip


def recorded_outcomes(conn: Connection, run_id: int, chat_ids: Iterable[str]) -> set[str]:
    """Which of these chats already have their outcome in this run (a partition written)."""
    outcomes = schema.run_outcomes
    ids = list(dict.fromkeys(chat_ids))
    found: set[str] = set()
    for start in range(0, len(ids), 5_000):
        rows = conn.execute(
            select(outcomes.c.chat_id).where(
                outcomes.c.run_id == run_id, outcomes.c.chat_id.in_(ids[start : start + 5_000])
            )
        )
        found.update(r[0] for r in rows)
    return found


def save_counters(conn: Connection, run_id: int, counters: RunCounters) -> None:
    _save_counters(conn, run_id, counters.as_dict())


def _save_counters(conn: Connection, run_id: int, counters: dict[str, Any]) -> None:
    conn.execute(
        update(schema.runs)
        .where(schema.runs.c.run_id == run_id)
        .values(counters=json.dumps(counters, sort_keys=True))
    )


def add_write_counts(conn: Connection, run_id: int, more: WriteCounts) -> None:
    """Add to the run's write counters in the caller's transaction, the runs row locked (FOR
    UPDATE on PostgreSQL) so that partitions committing at once on Dask workers all count."""
    runs = schema.runs
    stored = conn.execute(
        select(runs.c.counters).where(runs.c.run_id == run_id).with_for_update()
    ).scalar_one()
    counters = json.loads(stored) if stored else {}
    writes = counters.setdefault("writes", {})
    for key, value in more.as_dict().items():
        writes[key] = writes.get(key, 0) + int(value)
    _save_counters(conn, run_id, counters)


def mark_files(conn: Connection, run_id: int, files: pd.DataFrame) -> None:
    """Export files fully loaded by this run (path, kind, size, mtime_ns, sha256)."""
    if files.empty:
        return
    files = files.assign(loaded_run_id=run_id, loaded_at=datetime.now(UTC))
    upsert(
        conn,
        schema.source_files,
        files,
        key=["path"],
        update=["kind", "size", "mtime_ns", "sha256", "loaded_run_id", "loaded_at"],
    )


def finish_run(
    conn: Connection,
    run_id: int,
    status: str,
    report: dict[str, Any] | None,
    error: str | None = None,
) -> None:
    conn.execute(
        update(schema.runs)
        .where(schema.runs.c.run_id == run_id)
        .values(
            status=status,
            finished_at=datetime.now(UTC),
            report=json.dumps(report, sort_keys=False, default=str) if report is not None else None,
            error=error,
        )
    )


def existing_activities(conn: Connection, chat_ids: Iterable[str]) -> pd.DataFrame:
    return select_in(
        conn,
        schema.activities,
        ["chat_id"],
        chat_ids,
        ["chat_id", "record_type", "record_id", "content_hash", "chat_version"],
    )


def insert_leads(conn: Connection, run_id: int, leads: pd.DataFrame) -> int:
    """Leads created from chats. The partial UNIQUE key (email_normalized among chat-created
    leads) makes a second lead for an email impossible; a conflict means the plan was made on a
    stale view of the store, so the chunk fails rather than attach chats to a lead that is not there."""
    if leads.empty:
        return 0
    frame = dedupe(leads, ["email_normalized"])
    inserted = upsert(
        conn,
        schema.leads,
        frame,
        key=["email_normalized"],
        index_where=text("origin = 'chat'"),
        constants={"created_run_id": run_id},
    )
    if inserted == len(frame):  # the database inserted every one: none was there already
        return len(frame)
    # some conflicted: fine only if they are these very leads (a plan applied again)
    stored = select_in(conn, schema.leads, ["id"], frame["id"].tolist(), ["id", "email_normalized"])
    if len(stored) != len(frame):
        raise RunFailed(
            f"a chat-created lead already exists for {len(frame) - len(stored)} email(s); rerun the sync"
        )
    return len(frame)


_CHAT_RECORD_KEY = ["chat_id", "record_type", "record_id", "kind"]


def count_new_keys(conn: Connection, table_name: str, frame: pd.DataFrame) -> int:
    """How many (chat, record, kind) keys of ``frame`` the table does not hold yet."""
    if frame.empty:
        return 0
    table = schema.metadata.tables[table_name]
    found = select_in(conn, table, ["chat_id"], frame["chat_id"], _CHAT_RECORD_KEY)
    known = (
        set(found.astype({"record_id": "int64"}).itertuples(index=False, name=None))
        if not found.empty
        else set()
    )
    keys = set(
        frame[_CHAT_RECORD_KEY].astype({"record_id": "int64"}).itertuples(index=False, name=None)
    )
    return len(keys - known)


def write_notes(conn: Connection, run_id: int, notes: pd.DataFrame) -> int:
    """One note per (chat, record, kind); a changed note text is updated in place. Returns new notes."""
    if notes.empty:
        return 0
    created = count_new_keys(conn, "notes", notes)
    table = schema.notes
    excluded = dialect_insert(conn, table).excluded
    upsert(
        conn,
        table,
        notes,
        constants={"created_run_id": run_id},
        key=_CHAT_RECORD_KEY,
        update=["content", "creator_id"],
        where=excluded.content != table.c.content,
    )
    return created


def write_notifications(conn: Connection, run_id: int, notifications: pd.DataFrame) -> int:
    """One notification per (chat, record, kind), never a second. Returns new notifications."""
    if notifications.empty:
        return 0
    created = count_new_keys(conn, "notifications", notifications)
    upsert(
        conn,
        schema.notifications,
        notifications,
        constants={"created_run_id": run_id},
        key=_CHAT_RECORD_KEY,
    )
    return created


def apply_phone_changes(conn: Connection, run_id: int, changes: pd.DataFrame) -> int:
    """Set the phones and audit each change in field_changes (keyed record, field, chat).

    The plan holds only changes not made before (it is given the ones field_changes has), and
    the audit's key refuses a second row for one (record, field, chat) in any case.
    """
    if changes.empty:
        return 0
    upsert(
        conn,
        schema.field_changes,
        changes,
        constants={"run_id": run_id},
        key=["record_type", "record_id", "field", "chat_id"],
    )
    for record_type, table in (("lead", schema.leads), ("contact", schema.contacts)):
        mine = changes[changes["record_type"] == record_type]
        if mine.empty:
            continue
        final = mine.drop_duplicates(
            "record_id", keep="last"
        )  # in chat order: the last change wins
        stmt = (
            update(table).where(table.c.id == bindparam("record")).values(phone=bindparam("phone"))
        )
        conn.execute(
            stmt,
            [
                {"record": int(r), "phone": p}
                for r, p in zip(final["record_id"], final["new_value"], strict=True)
            ],
        )
    return len(changes)


def save_pool_states(conn: Connection, run_id: int, states: dict[str, Any]) -> None:
    """Pool pointers, committed with the leads they assigned."""
    import pandas as pd  # noqa: PLC0415

    if not states:
        return
    frame = pd.DataFrame(
        [
            {
                "pool": name,
                "pointer": s.pointer,
                "state": s.to_json(),
                "assigned": s.assigned,
                "updated_run_id": run_id,
            }
            for name, s in sorted(states.items())
        ]
    )
    upsert(
        conn,
        schema.pool_state,
        frame,
        key=["pool"],
        update=["pointer", "state", "assigned", "updated_run_id"],
    )


def applied_phone_changes(
    conn: Connection, chat_ids: Iterable[str]
) -> frozenset[tuple[str, int, str]]:
    found = select_in(
        conn,
        schema.field_changes,
        ["chat_id"],
        chat_ids,
        ["record_type", "record_id", "chat_id", "field"],
    )
    found = found[found["field"] == "phone"]
    return frozenset((t, int(i), c) for t, i, c, _f in found.itertuples(index=False, name=None))


def finish_window(conn: Connection, run_id: int, start: Any, end: Any, chats: int) -> None:
    """A backfill window done; ``backfill --resume`` goes on after it."""
    import pandas as pd  # noqa: PLC0415

    frame = pd.DataFrame(
        [
            {
                "run_id": run_id,
                "window_start": start,
                "window_end": end,
                "chats": chats,
                "finished_at": datetime.now(UTC),
            }
        ]
    )
    upsert(
        conn,
        schema.backfill_windows,
        frame,
        key=["run_id", "window_start"],
        update=["chats", "finished_at"],
    )
