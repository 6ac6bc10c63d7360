"""Does a change leave chatsell's results as they were? Run, then compare two runs' outputs.

    python benchmarks/same_result.py run --exports DIR --out OUT_A [--db URL] [--chatsell CMD]
    python benchmarks/same_result.py compare OUT_A OUT_B

``run`` makes a fresh store (a new SQLite file in OUT, or a new schema on ``--db``'s PostgreSQL,
dropped after), then runs a first sync, an unchanged sync and a ``--full`` of the exports
(``DIR`` as `benchmarks/run.py` makes it, with its ``chatsell.bench.toml``), keeping for each
run its report files (``--report-dir``), ``report --details --format csv``, and after the three
a dump of every table of the store, rows sorted. ``compare`` says which of those differ, with
what is bound to differ masked: timestamps and durations in the reports, the clock and host
columns of ``runs``, ``source_files.loaded_at``, the lock, and the random erasure salt.

The performance work of issue 10 must not change a result: this is how it checks, on the
benchmark's exports, that the reports stay byte for byte what they were (except timings).
"""

from __future__ import annotations

import argparse
import csv
import difflib
import functools
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

VOLATILE = {  # table -> columns bound to differ between two equal runs
    "runs": {"started_at", "finished_at", "host", "pid", "report", "counters", "options"},
    "source_files": {"loaded_at", "mtime_ns", "path"},
    "run_lock": None,  # None: the whole table
    "store_settings": None,
    "alert_state": None,
    "sell_outbox": {"created_at", "updated_at", "next_attempt_at"},
    "scratch_dirs": None,
}
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?")
_SECONDS = re.compile(r"\b(\d+h )?(\d+m )?\d+(\.\d+)?\s?(s|ms|seconds)\b")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--exports", type=Path, required=True)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--db", help="a PostgreSQL URL (a new schema is made there); default SQLite")
    run.add_argument("--chatsell", default=f"{sys.executable} -m etl")
    compare = sub.add_parser("compare")
    compare.add_argument("a", type=Path)
    compare.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        sys.exit(_run(args))
    sys.exit(_compare(args.a, args.b))


def _run(args: argparse.Namespace) -> int:
    out: Path = args.out.resolve()  # (the runs' directory: the paths below must hold there)
    args.exports = args.exports.resolve()
    out.mkdir(parents=True, exist_ok=True)
    schema = None
    if args.db:
        schema = f"same_{uuid.uuid4().hex[:10]}"
        _psql(args.db, f"CREATE SCHEMA {schema}")
        url = f"{args.db}?options=-csearch_path%3D{schema}"
    else:
        db = out / "store.db"
        for stale in out.glob("store.db*"):
            stale.unlink()
        url = f"sqlite:///{db}"
    env = {**os.environ, "CHATSELL_DATABASE_URL": url}
    base = [
        *shlex.split(args.chatsell),
        "--config",
        str(args.exports / "chatsell.bench.toml"),
        "-q",
    ]
    try:
        # run from ``out``: ``python -m etl`` from a checkout imports that checkout's ``etl``
        # before ``PYTHONPATH``'s, so a "before" run from the "after" checkout would be "after"
        run = functools.partial(subprocess.run, env=env, check=True, cwd=out)
        run([*base, "db", "upgrade"], stdout=subprocess.DEVNULL)
        for number, extra in enumerate(([], [], ["--full"]), start=1):
            reports = out / "reports"
            run(
                [*base, "sync", "--chats", str(args.exports / "chat"), "--sell",
                 str(args.exports / "sell"), "--report-dir", str(reports), *extra],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            with open(out / f"details-{number}.csv", "wb") as sink:
                run([*base, "report", str(number), "--details", "--format", "csv"], stdout=sink)
        _dump(url, out / "tables")
    finally:
        if schema:
            _psql(args.db, f"DROP SCHEMA {schema} CASCADE")
    return 0


def _psql(url: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _dump(url: str, into: Path) -> None:
    from sqlalchemy import create_engine, inspect, select, text

    into.mkdir(exist_ok=True)
    engine = create_engine(url)
    with engine.connect() as conn:
        for name in sorted(inspect(conn).get_table_names()):
            skip = VOLATILE.get(name, set())
            if skip is None or name == "alembic_version":
                continue
            columns = [c["name"] for c in inspect(conn).get_columns(name) if c["name"] not in skip]
            rows = conn.execute(
                select(*[text(f'"{c}"') for c in columns]).select_from(text(f'"{name}"'))
            )
            values = sorted(tuple("" if v is None else str(v) for v in row) for row in rows)
            with open(into / f"{name}.csv", "w", newline="", encoding="utf-8") as sink:
                writer = csv.writer(sink)
                writer.writerow(columns)
                writer.writerows(values)
    engine.dispose()


def _masked(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in {".json", ".html"}:
        text = _SECONDS.sub("<seconds>", _TIME.sub("<time>", text))
    return text.splitlines()


def _compare(a: Path, b: Path) -> int:
    names = sorted(
        {
            p.relative_to(a)
            for p in a.rglob("*")
            if p.is_file() and not p.name.startswith("store.db")
        }
        | {
            p.relative_to(b)
            for p in b.rglob("*")
            if p.is_file() and not p.name.startswith("store.db")
        }
    )
    differ = 0
    for name in names:
        left, right = a / name, b / name
        if not left.exists() or not right.exists():
            print(f"only in {'B' if not left.exists() else 'A'}: {name}")
            differ += 1
            continue
        old, new = _masked(left), _masked(right)
        if old != new:
            differ += 1
            print(f"differs: {name}")
            for line in list(difflib.unified_diff(old, new, lineterm="", n=0))[:12]:
                print("   ", line[:200])
    print(f"{len(names)} files compared, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    main()
