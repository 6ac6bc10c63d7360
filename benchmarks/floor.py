"""What any sync of these exports into this schema must pay on this machine: the floors.

A sync's time targets only mean something against what the work costs with nothing wasted.
This measures, on the exports `benchmarks/run.py` generates (the same cache) and on this
machine, the two costs no implementation of the spec can avoid:

  1. **Parsing**: every export file read, gunzipped and parsed by orjson into Python objects
     (the chats must be parsed whole: their content hash and transcript need every field),
     in one process per CPU (`--workers`). Nothing else: no frames, hashing or staging.
  2. **Writing**: the rows a real `chatsell sync` stored (it runs one, timed, as the
     reference) copied into an empty store of the same schema by the database itself, table
     by table in primary-key order: `INSERT INTO ... SELECT ... ORDER BY key`, no Python per
     row, no client round trip, every UNIQUE key and index maintained as in a sync. On SQLite
     with the store's pragmas (WAL, synchronous NORMAL), one connection as a sync has; on
     PostgreSQL server-side, from one schema into another.

    python benchmarks/floor.py --size 1M --stores sqlite,postgresql

A lower bound for the wall time of a sync on N CPUs is then max(write, (parse CPU + write)
/ N): SQLite and a PostgreSQL session write on one CPU each, and the parsing shares the CPUs
with them. A `--full` re-run writes nothing but parses every file again: parse CPU / N.
Results go to benchmarks/out/floor.json and floor.md. Nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import shutil
import sqlite3
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import run as bench  # noqa: E402 - the benchmark's exports cache, machine facts and runner

MIB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    chats = bench._count(args.size)
    records = bench._count(args.records) if args.records else chats
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    out = Path(args.out).resolve()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    machine = bench._machine(args.pg_url if "postgresql" in stores else None)
    machine["bytecode_compiled"] = bench._compile_bytecode()
    data = bench._exports(work, chats, records, args.seed, regenerate=False, shape=args.shape)
    config = bench._write_config(data["dir"])
    result: dict[str, Any] = {"chats": chats, "records": records, "seed": args.seed,
                              "workers": args.workers}  # fmt: skip
    result["parse"] = {
        "chats": parse_floor(sorted((data["dir"] / "chat").rglob("*")), args.workers),
        "sell": parse_floor(
            sorted(
                p
                for p in (data["dir"] / "sell").rglob("*")
                if ".json" in p.name or ".csv" in p.name
            ),
            args.workers,
        ),
    }
    for kind, parsed in result["parse"].items():
        bench._say(
            f"parse {kind}: {parsed['files']} files, {parsed['mib']:,} MiB, {parsed['values']:,} "
            f"values: {parsed['wall_s']} s on {args.workers} processes, {parsed['cpu_s']} CPU-s"
        )
    command = bench._chatsell_command(None)
    for store in stores:
        result[store] = store_floor(store, command, data, config, work, args.pg_url, args.timeout)
    result["bound"] = {
        store: lower_bound(result["parse"], result[store], machine["nproc"])
        for store in stores
        if "write" in result[store]
    }
    path = out / "floor.json"
    path.write_text(json.dumps({"machine": machine, "result": result}, indent=2) + "\n")
    (out / "floor.md").write_text(markdown(machine, result), encoding="utf-8")
    bench._say(f"wrote {path} and {out / 'floor.md'}")
    print((out / "floor.md").read_text(encoding="utf-8"))
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/floor.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", default="100k", help="chats (k/M suffixes)")
    parser.add_argument("--records", help="Sell records; default: as many as chats")
    parser.add_argument("--stores", default="sqlite,postgresql", help="sqlite and/or postgresql")
    parser.add_argument("--pg-url", default=bench.DEFAULT_PG_URL, help="PostgreSQL server")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--shape", choices=("realistic", "light"), default="realistic",
                        help="the exports, as benchmarks/run.py's --shape")  # fmt: skip
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="parsers")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for the sync")
    parser.add_argument("--out", default=str(bench.DEFAULT_OUT), help="where floor.json/.md go")
    return parser.parse_args(argv)


# -- parsing -------------------------------------------------------------------------------------


def parse_floor(paths: list[Path], workers: int) -> dict[str, Any]:
    """Read, gunzip and parse every file, split over ``workers`` processes (largest first)."""
    files = sorted((p for p in paths if p.is_file()), key=lambda p: -p.stat().st_size)
    shares: list[list[Path]] = [[] for _ in range(workers)]
    sizes = [0] * workers
    for path in files:  # greedy: each file to the least loaded process
        least = sizes.index(min(sizes))
        shares[least].append(path)
        sizes[least] += path.stat().st_size
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_parse_files, shares))
    wall = time.perf_counter() - started
    return {
        "files": len(files),
        "mib": round(sum(p["bytes"] for p in parts) / MIB, 1),
        "values": sum(p["values"] for p in parts),
        "wall_s": round(wall, 2),
        "cpu_s": round(sum(p["cpu_s"] for p in parts), 2),
    }


def _parse_files(paths: list[Path]) -> dict[str, Any]:
    cpu = time.process_time()
    total = values = 0
    for path in paths:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        total += len(data)
        if path.name.endswith((".csv", ".csv.gz")):  # a Smart List: Python's CSV reader
            values += sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8-sig")))) - 1
            continue
        if path.name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
            for line in data.splitlines():
                try:
                    orjson.loads(line)
                    values += 1
                except orjson.JSONDecodeError:
                    pass  # the generator's few cut lines: rejects in a sync
            continue
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        for key in ("chats", "items", "docs"):
            if isinstance(document, dict) and key in document:
                document = document[key]
        values += len(document) if isinstance(document, list | dict) else 1
    return {"bytes": total, "values": values, "cpu_s": time.process_time() - cpu}


# -- writing -------------------------------------------------------------------------------------


def store_floor(
    store: str,
    command: list[str],
    data: dict[str, Any],
    config: Path,
    work: Path,
    pg_url: str,
    timeout: float,
) -> dict[str, Any]:
    """A real first sync (the reference), then its rows copied by the database alone."""
    chats = data["manifest"]["params"]["chats"]
    run_dir = work / f"floor_{store}_c{chats}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    schemas: list[str] = []
    if store == "sqlite":
        urls = [f"sqlite:///{run_dir / 'synced.db'}", f"sqlite:///{run_dir / 'copy.db'}"]
    else:
        schemas = [f"floor_{chats}_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        urls = [bench._pg_schema_url(pg_url, schema) for schema in schemas]
    base = [*command, "--config", str(config), "--log-format", "json", "-q"]
    result: dict[str, Any] = {}
    try:
        for url in urls:
            upgrade = bench._run_child(
                [*base, "db", "upgrade"], run_dir, timeout, {"CHATSELL_DATABASE_URL": url}
            )
            if upgrade["exit_code"]:
                raise SystemExit(f"db upgrade failed: {upgrade['stderr_tail'][-1:]}")
        sync = [*base, "sync", "--chats", str(data["dir"] / "chat"), "--sell",
                str(data["dir"] / "sell"), "--json"]  # fmt: skip
        first = bench._run_child(sync, run_dir, timeout, {"CHATSELL_DATABASE_URL": urls[0]})
        result["sync"] = {k: first[k] for k in ("exit_code", "wall_s", "cpu_user_s",
                                                "cpu_sys_s", "peak_rss_mib")}  # fmt: skip
        bench._say(f"{store}: sync {first['wall_s']} s (exit {first['exit_code']})")
        if first["exit_code"] not in (0, 3):
            return result
        if store == "sqlite":
            result["write"] = _sqlite_copy(run_dir / "synced.db", run_dir / "copy.db")
        else:
            result["write"] = _pg_copy(pg_url, *schemas)
        bench._say(
            f"{store}: the same rows written by the database alone: {result['write']['total_s']} s"
        )
        return result
    finally:
        for schema in schemas:
            bench._pg_drop_schema(pg_url, schema)
        for path in run_dir.glob("*.db*"):
            path.unlink()


def _tables() -> list[tuple[str, list[str]]]:
    """Every table of the store's schema with its primary key, parents before children."""
    from etl.load import schema

    return [
        (table.name, [c.name for c in table.primary_key.columns])
        for table in schema.metadata.sorted_tables
    ]


def _sqlite_copy(source: Path, target: Path) -> dict[str, Any]:
    db = sqlite3.connect(target, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(f"ATTACH DATABASE '{source}' AS synced")
    tables: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for name, key in _tables():
        rows = db.execute(f'SELECT count(*) FROM synced."{name}"').fetchone()[0]  # noqa: S608
        if not rows:
            continue
        began = time.perf_counter()
        db.execute("BEGIN")
        db.execute(f'DELETE FROM main."{name}"')  # noqa: S608 - (alembic_version, runs' rows)
        order = ", ".join(f'"{c}"' for c in key)
        db.execute(
            f'INSERT INTO main."{name}" SELECT * FROM synced."{name}" ORDER BY {order}'  # noqa: S608
        )
        db.execute("COMMIT")
        seconds = round(time.perf_counter() - began, 2)
        copied = db.execute(f'SELECT count(*) FROM main."{name}"').fetchone()[0]  # noqa: S608
        tables[name] = {"rows": rows, "copied": copied, "s": seconds}
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    total = time.perf_counter() - started
    db.close()
    return {"total_s": round(total, 2), "mib": round(target.stat().st_size / MIB, 1),
            "tables": tables}  # fmt: skip


def _pg_copy(pg_url: str, source: str, target: str) -> dict[str, Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    tables: dict[str, dict[str, Any]] = {}
    try:
        started = time.perf_counter()
        for name, key in _tables():
            with engine.begin() as conn:  # one transaction a table, as a chunk's commit is
                rows = conn.execute(sa.text(f'SELECT count(*) FROM "{source}"."{name}"')).scalar()  # noqa: S608
                if not rows:
                    continue
                began = time.perf_counter()
                order = ", ".join(f'"{c}"' for c in key)
                conn.execute(sa.text(f'DELETE FROM "{target}"."{name}"'))  # noqa: S608
                conn.execute(
                    sa.text(
                        f'INSERT INTO "{target}"."{name}" SELECT * FROM "{source}"."{name}" '  # noqa: S608
                        f"ORDER BY {order}"
                    )
                )
            seconds = round(time.perf_counter() - began, 2)
            with engine.connect() as conn:
                copied = conn.execute(sa.text(f'SELECT count(*) FROM "{target}"."{name}"')).scalar()  # noqa: S608
            tables[name] = {"rows": rows, "copied": copied, "s": seconds}
        total = time.perf_counter() - started
    finally:
        engine.dispose()
    return {"total_s": round(total, 2), "tables": tables}


# -- the bound -----------------------------------------------------------------------------------


def lower_bound(parse: dict[str, Any], store: dict[str, Any], cpus: int) -> dict[str, Any]:
    """No sync on ``cpus`` CPUs can be quicker than this (parsing and writing alone); nor a
    ``--full`` re-run, which writes nothing but parses every file again."""
    parse_cpu = parse["chats"]["cpu_s"] + parse["sell"]["cpu_s"]
    write = store["write"]["total_s"]
    bound = max(write, (parse_cpu + write) / cpus)
    return {"parse_cpu_s": round(parse_cpu, 2), "write_s": write, "bound_s": round(bound, 2),
            "full_bound_s": round(parse_cpu / cpus, 2), "sync_s": store["sync"]["wall_s"]}  # fmt: skip


def markdown(machine: dict[str, Any], result: dict[str, Any]) -> str:
    lines = [
        f"# Floors: {result['chats']:,} chats, {result['records']:,} Sell records",
        "",
        f"Machine: {machine['cpu_model']} x{machine['nproc']}, {machine['ram_gib']} GiB RAM, "
        f"Python loop {machine['python_loop_s']} s; commit {machine.get('git_commit')}.",
        "",
        f"| what | files | MiB (uncompressed) | values | wall ({result['workers']} processes) "
        "| CPU-s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, parsed in result["parse"].items():
        lines.append(
            f"| parse {kind} | {parsed['files']} | {parsed['mib']:,} | {parsed['values']:,} | "
            f"{parsed['wall_s']} s | {parsed['cpu_s']} |"
        )
    lines += ["", "| store | sync (wall) | rows written by the database alone | "
              "lower bound for a sync | sync / bound | lower bound for `--full` |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for store, bound in result["bound"].items():
        lines.append(
            f"| {store} | {bound['sync_s']} s | {bound['write_s']} s | {bound['bound_s']} s | "
            f"{bound['sync_s'] / bound['bound_s']:.1f}x | {bound['full_bound_s']} s |"
        )
    for store in result["bound"]:
        tables = result[store]["write"]["tables"]
        lines += ["", f"{store}, the copy table by table:", ""]
        lines += [f"- {name}: {t['rows']:,} rows, {t['s']} s" for name, t in tables.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
