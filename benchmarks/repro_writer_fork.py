"""Repro: a library caller's own SQLite connection to the store, open while a sync runs.

Each round syncs the shipped examples into a fresh SQLite file while the caller holds another
Store on that file, then checks that the store holds what the run reported writing:

- ``drop``: ``Store(url).upgrade()``, never disposed: the garbage collector closes its
  connection whenever it gets to it (the pattern first seen losing commits, now and then);
- ``dispose``: the caller's Store is disposed right after the writer process started, while
  it writes (what ``drop`` does by chance, every time).

A writer forked with such a connection open inherits SQLite's record of it (locks, WAL index)
without the locks themselves, and its commits can be lost when the caller's connection closes.

    PYTHONPATH=. python3 benchmarks/repro_writer_fork.py --rounds 40 --mode dispose

Exits 1 if any round lost writes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from etl.config import load_settings
from etl.load.sinks import ProcessSink
from etl.load.store import Store
from etl.run import SyncOptions, run_sync

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--mode", choices=("drop", "dispose"), default="dispose")
    args = parser.parse_args()
    lost = 0
    with tempfile.TemporaryDirectory(prefix="repro-writer-") as scratch:
        for round_ in range(args.rounds):
            url = f"sqlite:///{Path(scratch) / f'store{round_}.db'}"
            started = time.monotonic()
            reported, stored, balanced = _round(url, args.mode)
            ok = reported == stored and balanced
            lost += not ok
            print(f"{round_:3d} {time.monotonic() - started:5.2f}s reported={reported} "
                  f"stored={stored} balanced={balanced} {'ok' if ok else 'LOST'}", flush=True)  # fmt: skip
    print(f"{args.mode}: {lost} of {args.rounds} rounds lost writes")
    return 1 if lost else 0


def _round(url: str, mode: str) -> tuple[int, int, bool]:
    """Activities the run reported inserting, activities stored, whether it balanced."""
    if mode == "drop":
        Store(url).upgrade()
        restore = None
    else:
        caller = Store(url)
        caller.upgrade()
        restore = _dispose_after_start(caller)
    settings = load_settings(ROOT / "config" / "chatsell.example.toml", database_url=url)
    options = SyncOptions(chats=ROOT / "examples" / "chat", sell=ROOT / "examples" / "sell")
    try:
        report = run_sync(settings, options).report
    finally:
        if restore is not None:
            restore()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM activities")).scalar()
    engine.dispose()
    return report["writes"]["activities_inserted"], stored, report["accounting"]["balanced"]


def _dispose_after_start(caller: Store):
    """Close the caller's connections as soon as the writer has started; returns the undo."""
    real_start = ProcessSink.start

    def start(self):
        started = real_start(self)
        caller.dispose()
        return started

    ProcessSink.start = start
    return lambda: setattr(ProcessSink, "start", real_start)


if __name__ == "__main__":
    sys.exit(main())
