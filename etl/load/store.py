"""The CRM store: engine, migrations, the run lock, run bookkeeping and reads.

Writes live in ``etl.load.writers``; both are the only code that speaks SQL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    and_,
    create_engine,
    event,
    func,
    inspect,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from etl.errors import ConfigError, StoreError
from etl.load import faults, schema
from etl.load.lock import run_lock
from etl.load.upsert import dialect_insert, select_in
from etl.report.digest import OutcomeDigest

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration; a test checks it against Alembic's own view, and knowing it here keeps
# Alembic (a tenth of a second to import) out of every run that finds the schema current.
SCHEMA_HEAD = "0005"
INTERRUPTED = "interrupted: the process stopped before the run finished"
# The CRM columns a run holds in memory (the match index, diffs, owners), per table
CRM_COLUMNS: dict[str, tuple[str, ...]] = {
    "leads": ("id", "owner_id", "name", "status", "email_normalized", "phone", "sell_hash", "origin",
              "origin_chat_id", "created_run_id"),
    "contacts": ("id", "owner_id", "is_organization", "contact_id", "name", "email_normalized", "phone",
                 "sell_hash"),
    "deals": ("id", "owner_id", "name", "contact_id", "organization_id", "sell_hash"),
    "users": ("id", "name", "email", "email_normalized", "status", "team_name", "group_id",
              "group_name", "sell_hash"),
    "lead_conversions": ("id", "lead_id", "individual_id", "organization_id", "deal_id", "sell_hash"),
    "sell_notes": ("id", "sell_hash"),
}  # fmt: skip


def parse_url(url: str) -> URL:
    """A store URL; ``postgresql://`` means psycopg 3. Errors never echo the URL (it may hold a password)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "the store URL (--db / CHATSELL_DATABASE_URL) is not a database URL"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported store {parsed.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://"
        )
    return parsed


def masked(url: str | URL) -> str:
    """The URL with its password hidden, for logs, errors and reports."""
    try:
        return (url if isinstance(url, URL) else make_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


FETCH_ROWS = 50_000  # rows a read holds as row objects at once
# 64 MB of SQLite page cache (its default is 2 MB): chunk upserts into million-row indexes
# otherwise spend their time re-reading pages. It is per connection, and a run has a writing
# one and reading ones: 128 MB each put a --full run of 1M chats over 1 GiB
WRITE_CACHE_KIB = 65_536
READ_CACHE_KIB = 8_192  # a connection that only reads, beside a writer process
# A new SQLite store's page size (SQLite's default is 4096). An activity row holds a whole
# transcript (~1.5 KB), so a 4 KB page holds two or three of them and every chunk splits pages
# all over the table and its keys; see the README's benchmark for what 8 KB changed
SQLITE_PAGE_SIZE = 8192


class Store:
    """One CRM store (SQLite file or PostgreSQL database)."""

    def __init__(self, url: str) -> None:
        self.url = parse_url(url)
        self.dialect = self.url.get_backend_name()
        # never log or raise with bound parameters: they carry visitor data and transcripts
        kwargs: dict[str, Any] = {"hide_parameters": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": 60}
        self.engine: Engine = create_engine(self.url, **kwargs)
        # SQLite's page cache of each new connection (KiB): ``reading_only`` makes it smaller
        self.sqlite_cache_kib = WRITE_CACHE_KIB
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", self._sqlite_pragmas)

    def _sqlite_pragmas(self, dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        # a new file only (SQLite ignores it once the file has a page; WAL then fixes it)
        cursor.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute(f"PRAGMA cache_size = -{int(self.sqlite_cache_kib)}")
        cursor.close()

    def reading_only(self, only: bool = True) -> None:
        """Whether this process only reads (a writer process writes): connections opened from
        here on get a page cache for reading (SQLite). A --full run of 1M chats reads the
        store's chats chunk by chunk and its CRM whole: 64 MB a connection put it at 957 MiB,
        8 MB at 888, at the same speed. Call it with no connection open (``dispose``)."""
        self.sqlite_cache_kib = READ_CACHE_KIB if only else WRITE_CACHE_KIB

    @property
    def display_url(self) -> str:
        return masked(self.url)

    @property
    def embedded(self) -> bool:
        return self.dialect == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    # -- reachability and migrations ---------------------------------------------------------

    def check_reachable(self) -> None:
        """Connect once; an unreachable store is a one-line StoreError."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except (OperationalError, DBAPIError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise StoreError(f"cannot reach the store {self.display_url}: {reason}") from None

    def _alembic(self):
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def head(self) -> str:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic()).get_current_head() or ""

    def current(self) -> str | None:
        """The schema revision the store is at (None: never migrated)."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        from alembic import command

        cfg = self._alembic()
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def prepare(self) -> None:
        """Reachable and at the newest schema: SQLite upgrades itself, PostgreSQL must be upgraded."""
        self.check_reachable()
        if self.current() == SCHEMA_HEAD:
            return
        if self.embedded:
            self.upgrade()
            return
        raise ConfigError(
            f"the store {self.display_url} is at schema {self.current() or 'none'}, chatsell needs "
            f"{SCHEMA_HEAD}: run `chatsell db upgrade` first"
        )

    @contextmanager
    def lock(self) -> Iterator[dict[str, object]]:
        with run_lock(self.engine) as holder:
            yield holder

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            with self.engine.begin() as conn:
                yield conn
                faults.point("before_commit")
            faults.point("after_commit")
        except (OperationalError, DBAPIError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise StoreError(f"the store refused a write: {reason}") from exc

    # -- runs ----------------------------------------------------------------------------------

    def begin_run(
        self,
        mode: str,
        input_key: str,
        options: dict[str, Any],
        holder: dict[str, object],
        resume: str = "interrupted",
    ) -> tuple[int, bool]:
        """(run_id, resumed). We hold the lock, so a run still marked ``running`` has died.

        ``resume``: ``interrupted`` resumes such a run when it is the latest and had the same
        inputs (what ``sync`` does, so a killed cron run is finished by the next one);
        ``unfinished`` also resumes a failed one (``backfill --resume``); ``never`` starts anew.
        Runs not resumed are marked failed.
        """
        runs = schema.runs
        now = datetime.now(UTC)
        resumable = {"interrupted": ("running",), "unfinished": ("running", "failed"), "never": ()}[
            resume
        ]
        with self.transaction() as conn:
            latest = conn.execute(
                select(runs.c.run_id, runs.c.mode, runs.c.input_key, runs.c.status)
                .order_by(runs.c.run_id.desc())
                .limit(1)
            ).first()
            if (
                latest
                and latest.status in resumable
                and latest.mode == mode
                and latest.input_key == input_key
            ):
                conn.execute(
                    update(runs)
                    .where(runs.c.run_id == latest.run_id)
                    .values(
                        status="running",
                        host=holder["host"],
                        pid=holder["pid"],
                        error=None,
                        finished_at=None,
                    )
                )
                log.info(
                    "resuming run %s",
                    latest.run_id,
                    extra={"event": "run_resumed", "run_id": latest.run_id},
                )
                return int(latest.run_id), True
            conn.execute(
                update(runs)
                .where(runs.c.status == "running")
                .values(status="failed", finished_at=now, error=INTERRUPTED)
            )
            result = conn.execute(
                runs.insert().values(
                    mode=mode,
                    status="running",
                    started_at=now,
                    host=holder["host"],
                    pid=holder["pid"],
                    input_key=input_key,
                    options=json.dumps(options, default=str),
                    counters=json.dumps({}),
                )
            )
            return int(result.inserted_primary_key[0]), False

    def finished_windows(self, run_id: int) -> set[datetime]:
        table = schema.backfill_windows
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.window_start).where(table.c.run_id == run_id))
            return {
                pd.Timestamp(r[0]).tz_localize("UTC")
                if pd.Timestamp(r[0]).tzinfo is None
                else pd.Timestamp(r[0])
                for r in rows
            }

    def run_row(self, run_id: int | str) -> dict[str, Any] | None:
        runs = schema.runs
        with self.engine.connect() as conn:
            if run_id == "latest":
                query = (
                    select(runs)
                    .where(runs.c.status != "running")
                    .order_by(runs.c.run_id.desc())
                    .limit(1)
                )
            else:
                query = select(runs).where(runs.c.run_id == int(run_id))
            row = conn.execute(query).mappings().first()
            return dict(row) if row else None

    def recent_runs(self, limit: int) -> list[dict[str, Any]]:
        runs = schema.runs
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(runs).order_by(runs.c.run_id.desc()).limit(limit))
                .mappings()
                .all()
            )
            return [dict(r) for r in rows]

    def counters(self, run_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(schema.runs.c.counters).where(schema.runs.c.run_id == run_id)
            ).scalar()
            return json.loads(raw or "{}")

    def done_chat_ids(self, run_id: int) -> set[str]:
        """Chats this run already accounted for (a resumed run skips them)."""
        outcomes = schema.run_outcomes
        with self.engine.connect() as conn:
            rows = conn.execute(select(outcomes.c.chat_id).where(outcomes.c.run_id == run_id))
            return {r[0] for r in rows}

    def outcome_summary(self, run_id: int) -> tuple[dict[str, int], int]:
        """(count per outcome, distinct emails that matched more than one record)."""
        outcomes = schema.run_outcomes
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outcomes.c.outcome, func.count())
                .where(outcomes.c.run_id == run_id)
                .group_by(outcomes.c.outcome)
            ).all()
            multi = conn.execute(
                select(func.count(func.distinct(outcomes.c.email_normalized))).where(
                    outcomes.c.run_id == run_id, outcomes.c.match_count > 1
                )
            ).scalar()
        return {outcome: int(n) for outcome, n in rows}, int(multi or 0)

    def outcome_rows(self, run_id: int) -> pd.DataFrame:
        outcomes = schema.run_outcomes
        with self.engine.connect() as conn:
            frame = pd.read_sql(
                select(outcomes).where(outcomes.c.run_id == run_id).order_by(outcomes.c.chat_id),
                conn,
            )
        return _utc(frame, ("chat_started_at",))

    def outcome_digest(self, run_id: int, size: int = FETCH_ROWS) -> OutcomeDigest:
        """What the report page shows of a run's outcomes, in the memory of a small run: the
        counts per day, department and agent from GROUP BYs, and only the exception lists'
        rows (invalid emails, skipped leads, multi-matches), read ``size`` at a time in chat id
        order, as ``outcome_rows`` gives them."""
        o = schema.run_outcomes
        digest = OutcomeDigest()
        mine = o.c.run_id == run_id
        if self.dialect == "sqlite":  # stored as UTC text, 2026-11-02 09:00:00.000000
            day = func.substr(o.c.chat_started_at, 1, 10)
        else:
            day = func.to_char(func.timezone("UTC", o.c.chat_started_at), "YYYY-MM-DD")
        listed = or_(o.c.outcome.in_(["invalid_email", "lead_skipped"]), o.c.match_count > 1)
        with self.engine.connect() as conn:  # counts: a few rows each
            rows, first, last = conn.execute(
                select(
                    func.count(), func.min(o.c.chat_started_at), func.max(o.c.chat_started_at)
                ).where(mine)
            ).one()
            groups = {}
            for name, key in (("day", day), ("department", o.c.department), ("agent", o.c.agent)):
                key = key.label(name)
                grouped = conn.execute(
                    select(key, o.c.outcome, func.count().label("n"))
                    .where(mine)
                    .group_by(key, o.c.outcome)
                )
                groups[name] = pd.DataFrame(grouped.fetchall(), columns=[name, "outcome", "n"])
        digest.add_counts(rows, first, last, groups)
        for frame in self.outcome_chunks(run_id, [c.name for c in o.c], size, where=listed):
            digest.add_listed(_utc(frame, ("chat_started_at",)))
        return digest

    def outcome_chunks(
        self, run_id: int, columns: Iterable[str], size: int = FETCH_ROWS, where=None
    ) -> Iterator[pd.DataFrame]:
        """A run's outcome rows (these columns; those ``where`` holds) in chat id order, as
        ``outcome_rows`` gives them, ``size`` at a time: a million-chat run's details in the
        memory of a fetch."""
        o = schema.run_outcomes
        names = list(columns)
        stmt = select(*[o.c[n] for n in names]).where(o.c.run_id == run_id)
        if where is not None:
            stmt = stmt.where(where)
        stmt = stmt.order_by(o.c.chat_id)
        with self.engine.connect().execution_options(
            stream_results=True, max_row_buffer=size
        ) as conn:
            result = conn.execute(stmt)
            while rows := result.fetchmany(size):
                values = map(list, zip(*rows, strict=True))
                yield pd.DataFrame(dict(zip(names, values, strict=True)), columns=names)

    def reject_rows(self, run_id: int, limit: int | None = None) -> pd.DataFrame:
        """A run's rejects in file and position order (the first ``limit``, if given)."""
        rejects = schema.rejects
        stmt = (
            select(rejects)
            .where(rejects.c.run_id == run_id)
            .order_by(rejects.c.source_file, rejects.c.position)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return pd.read_sql(stmt, conn)

    def reject_count(self, run_id: int) -> int:
        rejects = schema.rejects
        with self.engine.connect() as conn:
            stmt = select(func.count()).select_from(rejects).where(rejects.c.run_id == run_id)
            return int(conn.execute(stmt).scalar_one())

    # -- inputs --------------------------------------------------------------------------------

    def source_files(self) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, sha256) of every export file loaded so far."""
        files = schema.source_files
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(files.c.path, files.c.size, files.c.mtime_ns, files.c.sha256)
            )
            return {path: (size, mtime, sha) for path, size, mtime, sha in rows}

    # -- CRM reads -----------------------------------------------------------------------------

    def crm_frames(
        self, names: Iterable[str] | None = None, only: Iterable[str] | None = None
    ) -> dict[str, pd.DataFrame]:
        """The CRM as the match index needs it: leads, contacts, deals, users, lead conversions.

        ``only``: just these of each table's columns (``id`` always), e.g. what a diff needs.
        """
        wanted = CRM_COLUMNS
        frames = {}
        if names is not None:
            wanted = {name: wanted[name] for name in names}
        if only is not None:
            keep = {"id", *only}
            wanted = {name: tuple(c for c in cols if c in keep) for name, cols in wanted.items()}
        # streamed: PostgreSQL through a server-side cursor, else psycopg receives all of a
        # million-row table before the first fetch (the run's peak, in a --full run)
        with self.engine.connect().execution_options(
            stream_results=True, max_row_buffer=FETCH_ROWS
        ) as conn:
            for name, columns in wanted.items():
                table = schema.metadata.tables[name]
                result = conn.execute(select(*[table.c[c] for c in columns]).order_by(table.c.id))
                frame = columnar_frame(result, columns)
                for column in columns:
                    if column == "id" or (column.endswith("_id") and column != "origin_chat_id"):
                        frame[column] = frame[column].astype("Int64")
                frames[name] = frame
        return frames

    def agents_frame(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(select(schema.agents), conn)

    def departments_frame(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(select(schema.departments), conn)

    def chat_versions(self, chat_ids: Iterable[str]) -> pd.DataFrame:
        """(chat_id, version, email_normalized) of the chats among these the store holds."""
        columns = ["chat_id", "version", "email_normalized"]
        with self.engine.connect() as conn:
            return select_in(conn, schema.chats, ["chat_id"], chat_ids, columns)

    def stored_chats(self, chat_ids: Iterable[str], columns: list[str]) -> pd.DataFrame:
        """Stored chats by id; a transcript kept on the chat's activities is read from there."""
        with self.engine.connect() as conn:
            frame = select_in(
                conn, schema.chats, ["chat_id"], chat_ids, columns, _STORED_TRANSCRIPT
            )
        return _utc(frame, ("started_at", "ended_at", "updated_at"))

    def chats_by_email(self, emails: Iterable[str], columns: list[str]) -> pd.DataFrame:
        """Stored chats by normalized email, transcripts as ``stored_chats`` reads them."""
        with self.engine.connect() as conn:
            frame = select_in(
                conn, schema.chats, ["email_normalized"], emails, columns, _STORED_TRANSCRIPT
            )
        return _utc(frame, ("started_at", "ended_at", "updated_at"))

    def pool_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(schema.pool_state)).mappings()]

    def has_chats(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(schema.chats.c.chat_id).limit(1)).first() is not None

    def rematch_queue(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(schema.rematch_queue.c.email_normalized))}

    # -- the read side: activity feed and Chat cards -------------------------------------------

    def record_exists(self, record_type: str, record_id: int) -> bool:
        table = {"lead": schema.leads, "contact": schema.contacts, "deal": schema.deals}[
            record_type
        ]
        with self.engine.connect() as conn:
            return (
                conn.execute(select(table.c.id).where(table.c.id == record_id)).first() is not None
            )

    def records_by_email(self, email_normalized: str) -> list[tuple[str, int]]:
        found = []
        with self.engine.connect() as conn:
            for record_type, table in (("lead", schema.leads), ("contact", schema.contacts)):
                ids = conn.execute(
                    select(table.c.id)
                    .where(table.c.email_normalized == email_normalized)
                    .order_by(table.c.id)
                )
                found.extend((record_type, int(i)) for (i,) in ids)
        return found

    def feed(
        self,
        records: list[tuple[str, int]],
        *,
        kind: str = "all",
        user_id: int | None = None,
        team: str | None = None,
        group: str | None = None,
        limit: int = 50,
    ) -> tuple[pd.DataFrame, int]:
        """(newest ``limit`` feed items, how many match) for the records: chats and notes.

        Filters apply to the agent's Sell user (a note's author): user, team name, group name.
        """
        users = schema.users
        parts = []
        if kind in ("chat", "all"):
            a = schema.activities
            parts.append(
                select(
                    literal("chat").label("type"),
                    a.c.chat_id,
                    a.c.record_type,
                    a.c.record_id,
                    a.c.started_at.label("at"),
                    a.c.ended_at,
                    a.c.agent_names,
                    a.c.visitor_name,
                    a.c.record_name,
                    a.c.transcript_url,
                    a.c.message_count,
                    a.c.tags,
                    literal(None).label("content"),
                    a.c.agent_user_id.label("user_id"),
                    users.c.name.label("user_name"),
                    users.c.team_name,
                    users.c.group_name,
                )  # fmt: skip
                .select_from(a.outerjoin(users, users.c.id == a.c.agent_user_id))
                .where(
                    _records_clause(a, records),
                    *_user_filters(a.c.agent_user_id, users, user_id, team, group),
                )
            )
        if kind in ("note", "all"):
            n = schema.notes
            parts.append(
                select(
                    literal("note").label("type"),
                    n.c.chat_id,
                    n.c.record_type,
                    n.c.record_id,
                    n.c.created_at.label("at"),
                    literal(None).label("ended_at"),
                    literal(None).label("agent_names"),
                    literal(None).label("visitor_name"),
                    literal(None).label("record_name"),
                    literal(None).label("transcript_url"),
                    literal(None).label("message_count"),
                    literal(None).label("tags"),
                    n.c.content,
                    n.c.creator_id.label("user_id"),
                    users.c.name.label("user_name"),
                    users.c.team_name,
                    users.c.group_name,
                )  # fmt: skip
                .select_from(n.outerjoin(users, users.c.id == n.c.creator_id))
                .where(
                    _records_clause(n, records),
                    *_user_filters(n.c.creator_id, users, user_id, team, group),
                )
            )
        if not parts:
            return pd.DataFrame(), 0
        union = parts[0] if len(parts) == 1 else union_all(*parts)
        feed = union.subquery()
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(feed)).scalar_one()
            result = conn.execute(
                select(feed).order_by(feed.c.at.desc(), feed.c.chat_id).limit(limit)
            )
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        return _utc(frame, ("at", "ended_at")), int(total)

    def user_id_for(self, ref: str) -> int | None:
        """A Sell user by id, email or name (case-insensitive)."""
        users = schema.users
        text_ref = ref.strip()
        with self.engine.connect() as conn:
            if text_ref.isdigit():
                row = conn.execute(select(users.c.id).where(users.c.id == int(text_ref))).first()
            else:
                lowered = text_ref.lower()
                row = conn.execute(
                    select(users.c.id).where(
                        or_(
                            func.lower(users.c.email) == lowered,
                            func.lower(users.c.name) == lowered,
                        )
                    )
                ).first()
        return int(row[0]) if row else None

    def chat_emails(self) -> list[str]:
        """Every normalized visitor email seen in chats."""
        chats = schema.chats
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(chats.c.email_normalized)
                .where(chats.c.email_normalized.is_not(None))
                .distinct()
            )
            return sorted(r[0] for r in rows)

    def card_records(self, emails: list[str]) -> dict[str, pd.DataFrame]:
        """Full lead and contact rows with these emails, and users (for owner names)."""
        out = {}
        with self.engine.connect() as conn:
            for name, table in (("leads", schema.leads), ("contacts", schema.contacts)):
                out[name] = select_in(
                    conn, table, ["email_normalized"], emails, [c.name for c in table.c]
                )
            out["users"] = pd.read_sql(select(schema.users.c.id, schema.users.c.name), conn)
        return out

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    # -- pull cursors ------------------------------------------------------------------------

    def pull_cursor(self, name: str) -> str | None:
        """Where the next ``chatsell pull`` of ``name`` starts (JSON text), or None."""
        table = schema.pull_cursors
        with self.engine.connect() as conn:
            return conn.execute(select(table.c.value).where(table.c.name == name)).scalar()

    def save_pull_cursor(self, name: str, value: str) -> None:
        """Commit a pull cursor; called only once the page it covers is safely on disk."""
        table = schema.pull_cursors
        with self.transaction() as conn:
            stmt = dialect_insert(conn, table).values(
                name=name, value=value, updated_at=datetime.now(UTC)
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[table.c.name],
                    set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
                )
            )


def columnar_frame(result, columns: Iterable[str], size: int = FETCH_ROWS) -> pd.DataFrame:
    """A query's rows as a frame, built column by column from bounded fetches.

    ``pd.DataFrame(result.fetchall())`` holds every row object and the frame at once (about
    twice the memory, at a million CRM rows the run's peak); here only ``size`` rows are ever
    held as row objects, and each column becomes one typed array.
    """
    names = list(columns)
    values: list[list[Any]] = [[] for _ in names]
    while rows := result.fetchmany(size):
        for target, column in zip(values, zip(*rows, strict=True), strict=True):
            target.extend(column)
    if not values[0]:
        return pd.DataFrame([], columns=names)  # object columns, as from no rows at all
    return pd.DataFrame(dict(zip(names, values, strict=True)), columns=names)


def _as_utc(value: Any) -> pd.Timestamp:
    """SQLite hands timestamps back naive (they are stored as UTC), PostgreSQL aware."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _utc(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    for column in columns:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    return frame


def _stored_transcript() -> dict[str, Any]:
    """A chat row's transcript, or its activities' (``writers.upsert_chats`` writes it once)."""
    chats, held = schema.chats, schema.activities.alias("held")
    from_activity = (
        select(held.c.transcript).where(held.c.chat_id == chats.c.chat_id).limit(1)
    ).scalar_subquery()
    return {"transcript": func.coalesce(chats.c.transcript, from_activity)}


_STORED_TRANSCRIPT = _stored_transcript()


def _records_clause(table, records: list[tuple[str, int]]):
    return or_(*[and_(table.c.record_type == t, table.c.record_id == int(i)) for t, i in records])


def _user_filters(column, users, user_id: int | None, team: str | None, group: str | None) -> list:
    filters = []
    if user_id is not None:
        filters.append(column == user_id)
    if team:
        filters.append(func.lower(users.c.team_name) == team.strip().lower())
    if group:
        filters.append(func.lower(users.c.group_name) == group.strip().lower())
    return filters
