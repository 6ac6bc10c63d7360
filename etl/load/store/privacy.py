"""The store's privacy duties (SPEC 10): erasure requests and retention.

``erase`` removes every stored trace of a person's chats in one transaction; ``erasures`` gives
a sync what it needs to keep them out afterwards; ``prune`` applies retention. Each returns
what it removed, per table; with ``dry_run`` the same statements run and are rolled back, so
the counts are exact and nothing changes.

On SQLite, deleted rows leave their bytes in the file (free pages, the free space of a page,
the write-ahead log) until SQLite reuses them. Every connection runs with ``secure_delete =
FAST`` (``base``), which zeroes deleted cells in place; an erasure also runs with ``secure_delete
= ON`` and then rewrites the file (``VACUUM``) and empties the log, so no copy of what it erased
stays, nor of what earlier versions of those rows held.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, false, func, or_, select, update
from sqlalchemy.engine import Connection

from etl.load import schema
from etl.load.store.base import StoreBase

_SALT = "erasure_salt"
_APPLIED = "retention_applied"  # when retention last ran, and with which days
_PART = 5000  # values in one IN (...)
# the outbox rows that may be in Sell already: their record stays, without its content
_MAYBE_IN_SELL = ("sent", "sending")


class _DryRun(Exception):
    """Raised inside a dry run's transaction to roll it back."""


@dataclass
class Erasure:
    """What an erasure request removed (or, dry, would remove)."""

    emails: list[str]  # the normalized emails erased
    # table -> rows deleted, or values blanked (a row blanked for two reasons counts twice)
    tables: dict[str, int] = field(default_factory=dict)
    # chat-created leads Sell has (or may have: a request in flight): kept, for the operator
    # to erase in Sell; each with id, sell_id, email_normalized, outbox status
    pushed_leads: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "emails": self.emails,
            "dry_run": self.dry_run,
            "tables": dict(sorted(self.tables.items())),
            "pushed_leads": self.pushed_leads,
        }


@dataclass
class Pruned:
    """What retention blanked or deleted (or, dry, would), per table and column."""

    transcripts_before: datetime | None
    details_before: datetime | None
    tables: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    skipped: bool = False  # applied less than ``every`` ago: nothing done

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "transcripts_before": _iso(self.transcripts_before),
            "run_details_before": _iso(self.details_before),
            "tables": dict(sorted(self.tables.items())),
        }


class PrivacyBook(StoreBase):
    # -- erasure requests ------------------------------------------------------------------------

    def erasures(self) -> tuple[str, dict[str, datetime]]:
        """(the salt, erased email hash -> when) for a sync's planner; no salt: none erased."""
        with self.engine.connect() as conn:
            salt = conn.execute(
                select(schema.store_settings.c.value).where(schema.store_settings.c.name == _SALT)
            ).scalar()
            if salt is None:
                return "", {}
            e = schema.erasures
            rows = conn.execute(select(e.c.email_hash, e.c.erased_at)).all()
        return str(salt), {str(h): _aware(at) for h, at in rows}

    def erase(
        self, emails: list[str], spelled: Iterable[str], now: datetime, dry_run: bool = False
    ) -> Erasure:
        """Erase every stored trace of the chats of these normalized ``emails`` (SPEC 10), in
        one transaction, and remember each email as its salted hash. ``spelled``: the emails as
        the operator gave them, also searched for in the raw text of rejects."""
        result = Erasure(emails=sorted(set(emails)), dry_run=dry_run)
        if not result.emails:
            return result
        needles = sorted({s.strip().lower() for s in [*emails, *spelled] if s.strip()})
        with self._secure(), self._maybe_dry(dry_run) as conn:
            _erase(conn, result, needles, now)
            if dry_run:
                raise _DryRun
        if not dry_run:
            self._scrub_file()
        return result

    # -- retention -------------------------------------------------------------------------------

    def prune(
        self,
        now: datetime,
        transcripts_days: int | None,
        run_details_days: int | None,
        dry_run: bool = False,
        keep_run: int | None = None,
        every: timedelta | None = None,
    ) -> Pruned:
        """Blank the transcripts and note texts of chats that ended more than
        ``transcripts_days`` ago, and delete the outcomes and rejects of runs that started more
        than ``run_details_days`` ago (never of ``keep_run``, the run pruning).

        ``every``: do nothing when the same retention was applied less than that long ago (a
        sync's: the blanking scans every activity, and a day is retention's unit; what a sync
        writes in between is planned without what retention drops already)."""
        result = Pruned(
            transcripts_before=now - timedelta(days=transcripts_days) if transcripts_days else None,
            details_before=now - timedelta(days=run_details_days) if run_details_days else None,
            dry_run=dry_run,
        )
        if result.transcripts_before is None and result.details_before is None:
            return result
        policy = json.dumps([transcripts_days, run_details_days])
        if every is not None and not dry_run and not self._due(now, policy, every):
            result.skipped = True
            return result
        with self._maybe_dry(dry_run) as conn:
            if not dry_run:
                _set(conn, _APPLIED, json.dumps({"at": now.isoformat(), "policy": policy}))
            if result.transcripts_before is not None:
                _blank_transcripts(conn, result.tables, result.transcripts_before)
            if result.details_before is not None:
                _drop_details(conn, result.tables, result.details_before, keep_run)
            if dry_run:
                raise _DryRun
        return result

    def _due(self, now: datetime, policy: str, every: timedelta) -> bool:
        with self.engine.connect() as conn:
            applied = _get(conn, _APPLIED)
        if applied is None:
            return True
        last = json.loads(applied)
        return last["policy"] != policy or now - datetime.fromisoformat(last["at"]) >= every

    # -- the transaction and the file ------------------------------------------------------------

    @contextmanager
    def _maybe_dry(self, dry_run: bool) -> Iterator[Connection]:
        try:
            with self.transaction() as conn:
                yield conn
        except _DryRun:
            if not dry_run:
                raise

    @contextmanager
    def _secure(self) -> Iterator[None]:
        """SQLite: connections opened in the block overwrite every page and cell they free."""
        if not self.embedded:
            yield
            return
        self.dispose()  # the pooled connections were opened with FAST
        self.sqlite_secure_delete = "ON"
        try:
            yield
        finally:
            self.dispose()
            self.sqlite_secure_delete = "FAST"

    def _scrub_file(self) -> None:
        """SQLite: rewrite the file and empty its log, so no freed page or stale cell keeps a
        copy of the erased rows (nor of older versions of them, freed before the erasure)."""
        if not self.embedded or self.url.database in (None, "", ":memory:"):
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


# -- what an erasure does, statement by statement --------------------------------------------------


def _erase(conn: Connection, result: Erasure, needles: list[str], now: datetime) -> None:
    from etl.hashing import email_hash  # noqa: PLC0415 - it brings the frame libraries

    keys = result.emails
    salt = _salt(conn)
    chat_ids = _chats_of(conn, keys)
    leads, result.pushed_leads = _chat_leads(conn, keys)
    counts = result.tables

    def count(table: str, n: int) -> None:
        counts[table] = counts.get(table, 0) + max(int(n), 0)

    for table in (schema.activities, schema.notes, schema.notifications, schema.field_changes):
        n = _delete_in(conn, table, table.c.chat_id, chat_ids)
        if leads:  # whatever else sits on the leads that go
            n += _delete_in(conn, table, table.c.record_id, leads, table.c.record_type == "lead")
        count(table.name, n)
    o = schema.sell_outbox
    unsent = o.c.status.not_in(_MAYBE_IN_SELL)
    n = _delete_in(conn, o, o.c.chat_id, chat_ids, unsent)
    if leads:
        n += _delete_in(conn, o, o.c.record_id, leads, o.c.record_type == "lead", unsent)
    count("sell_outbox", n)
    n = _update_in(conn, o, o.c.chat_id, chat_ids, {"payload": None, "last_error": None})
    for key in keys:  # a pushed lead's row is its record of delivery: it stays, keyed by the hash
        n += conn.execute(
            update(o)
            .where(o.c.dedupe_key == f"lead:{key}", o.c.status == "sent")
            .values(dedupe_key=f"lead:erased:{email_hash(salt, key)}")
        ).rowcount
    count("sell_outbox", n)
    count("leads", _delete_in(conn, schema.leads, schema.leads.c.id, leads))
    count("chats", _delete_in(conn, schema.chats, schema.chats.c.chat_id, chat_ids))
    r = schema.run_outcomes
    n = _update_in(conn, r, r.c.email_normalized, keys, {"email_normalized": None})
    n += _update_in(
        conn,
        r,
        r.c.chat_id,
        chat_ids,
        {"email_normalized": None},
        r.c.email_normalized.is_not(None),
    )
    n += conn.execute(update(r).where(_holds(r.c.reason, needles)).values(reason=None)).rowcount
    count("run_outcomes", n)
    j = schema.rejects
    n = _update_in(conn, j, j.c.chat_id, chat_ids, {"raw": None}, j.c.raw.is_not(None))
    n += conn.execute(update(j).where(_holds(j.c.raw, needles)).values(raw=None)).rowcount
    count("rejects", n)
    q = schema.rematch_queue
    count("rematch_queue", _delete_in(conn, q, q.c.email_normalized, keys))
    e = schema.erasures
    for key in keys:
        hashed = email_hash(salt, key)
        conn.execute(delete(e).where(e.c.email_hash == hashed))
        conn.execute(e.insert().values(email_hash=hashed, erased_at=now))
    count("erasures", len(keys))


def _chats_of(conn: Connection, keys: list[str]) -> list[str]:
    """The chats of these emails: stored, or recorded in a run's outcomes (a chat stored
    without its email, or never stored: rejected, resumed)."""
    found: set[str] = set()
    for part in _parts(keys):
        c, r = schema.chats, schema.run_outcomes
        found.update(
            conn.execute(select(c.c.chat_id).where(c.c.email_normalized.in_(part))).scalars()
        )
        found.update(
            conn.execute(select(r.c.chat_id).where(r.c.email_normalized.in_(part))).scalars()
        )
    return sorted(found)


def _chat_leads(conn: Connection, keys: list[str]) -> tuple[list[int], list[dict[str, Any]]]:
    """(the chat-created leads of these emails Sell has not seen, the ones it has or may have)."""
    lead, o = schema.leads, schema.sell_outbox
    unpushed: list[int] = []
    pushed: list[dict[str, Any]] = []
    for part in _parts(keys):
        rows = conn.execute(
            select(lead.c.id, lead.c.sell_id, lead.c.email_normalized).where(
                lead.c.origin == "chat", lead.c.email_normalized.in_(part)
            )
        ).all()
        in_sell = {
            int(i)
            for i in conn.execute(
                select(o.c.record_id).where(
                    o.c.kind == "lead",
                    o.c.status.in_(_MAYBE_IN_SELL),
                    o.c.record_id.in_([int(r.id) for r in rows] or [0]),
                )
            ).scalars()
        }
        for row in rows:
            if row.sell_id is None and int(row.id) not in in_sell:
                unpushed.append(int(row.id))
            else:
                pushed.append(
                    {"id": int(row.id), "sell_id": row.sell_id, "email": row.email_normalized}
                )
    return unpushed, pushed


def _salt(conn: Connection) -> str:
    salt = _get(conn, _SALT)
    if salt is None:
        salt = secrets.token_hex(32)
        _set(conn, _SALT, salt)
    return salt


def _get(conn: Connection, name: str) -> str | None:
    s = schema.store_settings
    value = conn.execute(select(s.c.value).where(s.c.name == name)).scalar()
    return None if value is None else str(value)


def _set(conn: Connection, name: str, value: str) -> None:
    s = schema.store_settings
    conn.execute(delete(s).where(s.c.name == name))
    conn.execute(s.insert().values(name=name, value=value))


# -- retention ---------------------------------------------------------------------------------------


def _blank_transcripts(conn: Connection, counts: dict[str, int], before: datetime) -> None:
    c, a, n = schema.chats, schema.activities, schema.notes
    old = select(c.c.chat_id).where(c.c.ended_at < before).scalar_subquery()
    counts["chats"] = conn.execute(
        update(c)
        .where(c.c.ended_at < before, or_(_filled(c.c.transcript), _filled(c.c.visitor_notes)))
        .values(transcript="", visitor_notes="")
    ).rowcount
    counts["activities"] = conn.execute(
        update(a).where(a.c.ended_at < before, _filled(a.c.transcript)).values(transcript="")
    ).rowcount
    counts["notes"] = conn.execute(
        update(n).where(n.c.chat_id.in_(old), _filled(n.c.content)).values(content="")
    ).rowcount


def _drop_details(
    conn: Connection, counts: dict[str, int], before: datetime, keep_run: int | None
) -> None:
    runs = schema.runs
    old = runs.c.started_at < before
    if keep_run is not None:
        old = and_(old, runs.c.run_id != keep_run)
    old_runs = select(runs.c.run_id).where(old).scalar_subquery()
    for table in (schema.run_outcomes, schema.rejects):
        counts[table.name] = conn.execute(
            delete(table).where(table.c.run_id.in_(old_runs))
        ).rowcount


# -- helpers -----------------------------------------------------------------------------------------


def _parts(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), _PART):
        yield values[start : start + _PART]


def _delete_in(conn: Connection, table, column, values: list[Any], *where) -> int:
    n = 0
    for part in _parts(values):
        n += conn.execute(delete(table).where(column.in_(part), *where)).rowcount
    return n


def _update_in(conn: Connection, table, column, values: list[Any], to: dict, *where) -> int:
    n = 0
    for part in _parts(values):
        n += conn.execute(update(table).where(column.in_(part), *where).values(**to)).rowcount
    return n


def _holds(column, needles: list[str]):
    """``column`` contains one of ``needles`` (lowercase), case-insensitively."""
    if not needles:
        return false()
    return or_(*(func.lower(column).contains(n, autoescape=True) for n in needles))


def _filled(column):
    return and_(column.is_not(None), column != "")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
