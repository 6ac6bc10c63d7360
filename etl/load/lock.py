"""The store-level run lock: two runs never overlap.

PostgreSQL: a session advisory lock on a connection held for the whole run (released by the
server when that connection or its process dies). SQLite: an exclusive ``flock`` on
``<database>.lock`` beside the file (released by the kernel when the holder dies, so a killed
run never leaves a stale lock). Either way the holder writes who it is (host, pid, start time)
so a second run can name it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from etl.errors import LockHeld

_memory_lock = threading.Lock()


def holder_info() -> dict[str, object]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def describe(holder: dict[str, object] | None) -> str:
    if not holder:
        return "another chatsell run holds the store lock"
    return (
        "another chatsell run holds the store lock: "
        f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started_at')}"
    )


@contextmanager
def run_lock(engine: Engine) -> Iterator[dict[str, object]]:
    """Hold the store lock for the duration of the block, or raise LockHeld at once."""
    if engine.dialect.name == "postgresql":
        with _postgres_lock(engine) as holder:
            yield holder
    else:
        with _sqlite_lock(engine) as holder:
            yield holder


@contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[dict[str, object]]:
    database = engine.url.database
    holder = holder_info()
    if not database or database == ":memory:":
        if not _memory_lock.acquire(blocking=False):
            raise LockHeld(describe(None))
        try:
            yield holder
        finally:
            _memory_lock.release()
        return
    path = Path(database + ".lock")
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held open while locked)
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                other = json.loads(handle.read() or "null")
            except json.JSONDecodeError:
                other = None
            raise LockHeld(describe(other)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder))
        handle.flush()
        try:
            yield holder
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


_PG_KEY = "SELECT hashtext('chatsell:' || current_database() || ':' || current_schema())"


@contextmanager
def _postgres_lock(engine: Engine) -> Iterator[dict[str, object]]:
    holder = holder_info()
    with engine.connect() as conn:
        key = conn.execute(text(_PG_KEY)).scalar_one()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
        conn.commit()
        if not got:
            row = conn.execute(text("SELECT holder FROM run_lock WHERE name = 'run'")).first()
            conn.rollback()
            raise LockHeld(describe(json.loads(row[0]) if row and row[0] else None))
        try:
            conn.execute(text("DELETE FROM run_lock WHERE name = 'run'"))
            conn.execute(
                text("INSERT INTO run_lock (name, holder, acquired_at) VALUES ('run', :h, now())"),
                {"h": json.dumps(holder)},
            )
            conn.commit()
            yield holder
        finally:
            conn.rollback()
            conn.execute(text("DELETE FROM run_lock WHERE name = 'run'"))
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
