"""The store's engine: URLs, the connection's settings, transactions and migrations.

Every concern of ``Store`` (``etl.load.store``) is a subclass of ``StoreBase`` and reaches the
database only through ``engine`` and ``transaction``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from etl.errors import ConfigError, StoreError
from etl.load import faults

if TYPE_CHECKING:
    import pandas as pd

MIGRATIONS = Path(__file__).parent.parent / "migrations"
# The newest migration; a test checks it against Alembic's own view, and knowing it here keeps
# Alembic (a tenth of a second to import) out of every run that finds the schema current.
SCHEMA_HEAD = "0010"

FETCH_ROWS = 50_000  # rows a read holds as row objects at once
# 16 MB of SQLite page cache (its default is 2 MB): chunk upserts into million-row indexes
# re-read fewer pages. It is per connection, and a run has a writing one and reading ones:
# 128 MB each put a --full run of 1M chats over 1 GiB. A 1M light first sync wrote its chunks
# in the same time with 16 and 64 MB (63.6 and 62.5 s), and no faster with 256 than with 64
# (77.1 and 78.8 s, before the planner prepared the writer's rows); its writer held 312 MiB
# with 16 and 367 with 64
WRITE_CACHE_KIB = 16_384
READ_CACHE_KIB = 8_192  # a connection that only reads, beside a writer process
# A new SQLite store's page size (SQLite's default is 4096). An activity row holds a whole
# transcript (~1.5 KB), so a 4 KB page holds two or three of them and every chunk splits pages
# all over the table and its keys; see the README's benchmark for what 8 KB changed
SQLITE_PAGE_SIZE = 8192


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


class StoreBase:
    """One CRM store (SQLite file or PostgreSQL database): its engine and schema."""

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
        # deleted cells are zeroed in their page (FAST costs no extra I/O); an erasure's
        # connections zero freed pages too (ON, ``etl.load.store.privacy``)
        self.sqlite_secure_delete = "FAST"
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
        cursor.execute(f"PRAGMA secure_delete = {self.sqlite_secure_delete}")
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

    def __enter__(self) -> Self:
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

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

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


def columnar_frame(result, columns: Iterable[str], size: int = FETCH_ROWS) -> pd.DataFrame:
    """A query's rows as a frame, built column by column from bounded fetches.

    ``pd.DataFrame(result.fetchall())`` holds every row object and the frame at once (about
    twice the memory, at a million CRM rows the run's peak); here only ``size`` rows are ever
    held as row objects, and each column becomes one typed array.
    """
    import pandas as pd  # noqa: PLC0415 - a store opened for an unchanged sync builds no frame

    names = list(columns)
    values: list[list[Any]] = [[] for _ in names]
    while rows := result.fetchmany(size):
        for target, column in zip(values, zip(*rows, strict=True), strict=True):
            target.extend(column)
    if not values[0]:
        return pd.DataFrame([], columns=names)  # object columns, as from no rows at all
    return pd.DataFrame(dict(zip(names, values, strict=True)), columns=names)


def _utc(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """These timestamp columns as UTC (SQLite hands them back naive, PostgreSQL aware)."""
    import pandas as pd  # noqa: PLC0415

    for column in columns:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    return frame
