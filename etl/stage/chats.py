"""The run's staging area: a scratch SQLite file outside the store.

Chats read from any number of files go in as they are read; the same chat id met again keeps
only its newest version (update time, then content hash, so file order never matters). They
come back out in the one stable order every decision is made in (chat start time, then chat id)
in bounded chunks, so memory stays flat however large the export. A dry run stages too: the
store is never touched.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from etl.extract.chats import ChatBatch, read_batches
from etl.extract.files import SourceFile
from etl.procs import worker_pool
from etl.stage.scratch import scratch_dir
from etl.stage.versions import NEWER_THAN_STAGED
from etl.vocab import CHAT_COLUMNS

_TIME_COLUMNS = ("started_at", "ended_at", "updated_at")


_BOOL_COLUMNS = ("missed", "deleted")


_COLS = ", ".join(f'"{c}"' for c in CHAT_COLUMNS)
# an older version of a chat already staged is ignored; on a tie the one staged first stays
# (etl.stage.versions)
_ON_CONFLICT = (
    "ON CONFLICT (chat_id) DO UPDATE SET "
    + ", ".join(f'"{c}" = excluded."{c}"' for c in CHAT_COLUMNS if c != "chat_id")
    + f" WHERE {NEWER_THAN_STAGED}"
)
# column names are the constants of CHAT_COLUMNS; values are always bound parameters
_INSERT = (
    f"INSERT INTO chats ({_COLS}) VALUES ({', '.join('?' for _ in CHAT_COLUMNS)}) "  # noqa: S608
    + _ON_CONFLICT
)
# a shard takes every row as it comes; the merge applies the rule above to them in this order
_APPEND = f"INSERT INTO chats ({_COLS}) VALUES ({', '.join('?' for _ in CHAT_COLUMNS)})"  # noqa: S608


def _open(path: Path, keyed: bool = True) -> sqlite3.Connection:
    """A stage file: scratch (no journal, no fsync); ``keyed``: one row per chat id. A shard
    (not keyed) only appends: a small page cache does, where the stage's index wants a large
    one (each parsing worker held 64 MB of its shard's pages otherwise)."""
    db = sqlite3.connect(path)
    db.executescript(
        f"""
        PRAGMA journal_mode = OFF;
        PRAGMA synchronous = OFF;
        PRAGMA temp_store = FILE;
        PRAGMA cache_size = -{65536 if keyed else 16384};
        """
    )
    # a rowid table with a unique index: rows hold whole transcripts, which a WITHOUT ROWID
    # table would keep in its key B-tree (twice as slow to fill and to read here)
    db.execute(f"CREATE TABLE IF NOT EXISTS chats ({_COLS})")
    if keyed:
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS by_id ON chats (chat_id)")
    return db


def _add(db: sqlite3.Connection, frame: pd.DataFrame, statement: str = _INSERT) -> bool:
    if frame.empty:
        return False
    columns = [_sql_values(frame[name], name) for name in CHAT_COLUMNS]
    with db:
        db.executemany(statement, zip(*columns, strict=True))
    return True


def _sql_values(values: pd.Series, name: str) -> list:
    """A column as the stage stores it: times as epoch microseconds, flags as 0 and 1, text as
    text; missing values as None. (``tolist`` and a mask: ``to_numpy(object, na_value=None)``
    cost as much as the insert itself on text columns.)"""
    if name in _TIME_COLUMNS:
        out = values.astype("datetime64[us, UTC]").astype("int64").tolist()
    elif name in _BOOL_COLUMNS:
        return values.astype(int).tolist()
    else:
        out = values.tolist()
    missing = values.isna()
    if missing.any():
        out = [None if gap else value for value, gap in zip(out, missing.tolist(), strict=True)]
    return out


class Shard:
    """A parsing worker's part of the stage: one file's chats in file order, in a file of the
    stage's directory that ``ChatStage.merge`` takes over. Staging in the workers keeps the
    run's own process out of the per-chat work of reading. A chat met twice in the file is
    kept twice (no key to maintain: a sixth of the insert); the merge, taking the rows in
    order, keeps the version the stage's rule keeps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = _open(path, keyed=False)

    def add(self, frame: pd.DataFrame) -> None:
        _add(self._db, frame, _APPEND)

    def close(self) -> None:
        self._db.close()


class ChatStage:
    """Deduplicated chats of one run, handed back in (started_at, chat_id) order."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._dir = scratch_dir("stage", directory)
        self.path = Path(self._dir.name) / "stage.sqlite"
        self._db = _open(self.path)
        self._indexed = False
        self._shards = 0

    def add(self, frame: pd.DataFrame) -> None:
        """Stage a frame of chats (CHAT_COLUMNS); an older version of a staged chat is ignored."""
        if _add(self._db, frame):
            self._indexed = False

    def shard(self) -> Path:
        """A new path in the stage's directory for a parsing worker's shard (``Shard``)."""
        self._shards += 1
        return self.path.with_name(f"shard-{self._shards}.sqlite")

    def merge(self, path: Path) -> None:
        """Stage the chats of a shard a worker filled, as if they were added here, then remove
        the shard. Merged in file order, the same chat keeps the version ``add`` would keep."""
        self._db.execute("ATTACH DATABASE ? AS shard", (str(path),))
        try:
            with self._db:
                # "WHERE true": SQLite's parser needs it between a SELECT and ON CONFLICT
                self._db.execute(
                    f"INSERT INTO main.chats ({_COLS}) SELECT {_COLS} FROM shard.chats "  # noqa: S608
                    + "WHERE true ORDER BY rowid "
                    + _ON_CONFLICT
                )
        finally:
            self._db.execute("DETACH DATABASE shard")
        path.unlink()
        self._indexed = False

    def count(self, since: pd.Timestamp | None = None, until: pd.Timestamp | None = None) -> int:
        where, params = _window(since, until)
        return self._db.execute(f"SELECT count(*) FROM chats {where}", params).fetchone()[0]  # noqa: S608

    def span(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The earliest and latest chat start staged."""
        low, high = self._db.execute(
            "SELECT min(started_at), max(started_at) FROM chats"
        ).fetchone()
        if low is None:
            return None
        return pd.Timestamp(low, unit="us", tz="UTC"), pd.Timestamp(high, unit="us", tz="UTC")

    def staged(self, chat_ids) -> set[str]:
        """Which of these chat ids this run staged."""
        ids = list(dict.fromkeys(chat_ids))
        found: set[str] = set()
        for start in range(0, len(ids), 5_000):
            part = ids[start : start + 5_000]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(f"SELECT chat_id FROM chats WHERE chat_id IN ({marks})", part)  # noqa: S608
            found.update(r[0] for r in rows)
        return found

    def chunks(
        self,
        size: int,
        since: pd.Timestamp | None = None,
        until: pd.Timestamp | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Staged chats in (started_at, chat_id) order, ``size`` at a time, optionally a window."""
        if not self._indexed:
            self._db.execute("CREATE INDEX IF NOT EXISTS by_start ON chats (started_at, chat_id)")
            # staging is done: reading in start order gains little from a big page cache, and
            # the run needs the memory for the CRM index and the chunks
            self._db.execute("PRAGMA cache_size = -8192")
            self._db.execute("PRAGMA shrink_memory")
            self._indexed = True
        where, params = _window(since, until)
        cols = ", ".join(f'"{c}"' for c in CHAT_COLUMNS)
        cursor = self._db.execute(
            f"SELECT {cols} FROM chats {where} ORDER BY started_at, chat_id",  # noqa: S608
            params,
        )
        while rows := cursor.fetchmany(size):
            yield _frame(rows)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> ChatStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# chats a parsing worker types at a time into its shard: an 80 MB file staged by batches of
# 10,000 took its worker to 136 MiB, by 2,000 to 98 MiB, in less CPU (3.8 s against 4.0);
# smaller batches cost more calls than they save
SHARD_BATCH = 2_000


@dataclass(slots=True)
class Staged:
    """What staging part of the exports gave besides the chats: their count, the agents and
    departments met, and what could not be read."""

    chats: int
    agents: list[pd.DataFrame] = field(default_factory=list)
    departments: list[pd.DataFrame] = field(default_factory=list)
    rejects: list = field(default_factory=list)


def fill(
    stage: ChatStage,
    files: Iterable[SourceFile],
    batch_size: int,
    workers: int = 1,
    pool: Executor | None = None,
) -> Iterator[Staged]:
    """Parse ``files`` into ``stage``, yielding what each part gave, in file order.

    With ``workers`` > 1, the files are parsed and staged by that many forked processes, each
    file into its own shard (a few files ahead at most), which this process merges in file
    order: the stage ends as if every file had been added here in order. A worker streams its
    file in batches into the shard on disk, so its memory does not grow with the file's size
    (a large file once streamed through this process instead, leaving the workers idle: a
    1M-chat export of 16 files of 80 MB was parsed by one CPU). ``pool``: the caller's worker
    processes (of ``workers``), used and left open; else forked here.
    """
    files = list(files)
    if workers <= 1 or len(files) < 2:
        for batch in read_batches(files, batch_size):
            stage.add(batch.chats)
            yield _staged(batch)
        return
    with contextlib.ExitStack() as owned:
        if pool is None:
            pool = owned.enter_context(worker_pool(workers))
        ahead: deque = deque()

        def merged() -> Staged:
            path, staged = ahead.popleft().result()
            if path is not None:
                stage.merge(path)
            return staged

        for source in files:
            part = min(batch_size, SHARD_BATCH)
            ahead.append(pool.submit(_stage_file, source, part, stage.shard()))
            if len(ahead) > 2 * workers:
                yield merged()
        while ahead:
            yield merged()


def _stage_file(source: SourceFile, batch_size: int, path: Path) -> tuple[Path | None, Staged]:
    """A worker's unit of work: one file's chats into a new shard at ``path``."""
    total = Staged(0)
    shard = None
    try:
        for batch in read_batches([source], batch_size):
            if not batch.chats.empty:
                shard = shard or Shard(path)
                shard.add(batch.chats)
            part = _staged(batch)
            total.chats += part.chats
            total.agents += part.agents
            total.departments += part.departments
            total.rejects += part.rejects
    finally:
        if shard is not None:
            shard.close()
    return (path if shard is not None else None), total


def _staged(batch: ChatBatch) -> Staged:
    return Staged(len(batch.chats), [batch.agents], [batch.departments], list(batch.rejects))


def _window(since: pd.Timestamp | None, until: pd.Timestamp | None) -> tuple[str, list[int]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("started_at >= ?")
        params.append(_micros(since))
    if until is not None:
        clauses.append("started_at < ?")
        params.append(_micros(until))
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _micros(value: pd.Timestamp) -> int:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1000)  # .value is nanoseconds whatever the unit


def _frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(CHAT_COLUMNS))
    for name in _TIME_COLUMNS:
        frame[name] = pd.to_datetime(frame[name], unit="us", utc=True).astype("datetime64[us, UTC]")
    for name in _BOOL_COLUMNS:
        frame[name] = frame[name].astype(bool)
    frame["message_count"] = frame["message_count"].astype("int64")
    return frame
