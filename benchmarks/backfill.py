"""Backfill engines compared: `chatsell backfill` as a subprocess into PostgreSQL, with
`--engine local`, then `--engine dask --workers 1` and `--workers 2` (a LocalCluster).

Each run starts from an empty PostgreSQL schema and backfills every generated chat (windows of
`--window`), so the three do the same work; the table says whether their outcomes and writes
agree. Results go to benchmarks/out/backfill.json and backfill.md.

    python benchmarks/backfill.py --size 100k
    python benchmarks/backfill.py --size 20k --workers 1,2,4 --window 30d

Peak RSS is the largest single process (wait4 of the chatsell process: it and the descendants it
reaped, so Dask workers count one by one, not summed). Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402 - the sync benchmark's helpers: generation, child runs, machine

SINCE, UNTIL = "2000-01-01", "2100-01-01"  # every generated chat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100k", help="chats (and Sell records unless --records)")
    parser.add_argument("--records", help="Sell records (default: as many as chats)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--window", default="30d", help="backfill window (default 30d)")
    parser.add_argument("--workers", default="1,2", help="Dask worker counts to run (default 1,2)")
    parser.add_argument("--pg-url", default=bench.DEFAULT_PG_URL)
    parser.add_argument("--out", default=str(bench.DEFAULT_OUT))
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)

    chats = bench._count(args.size)
    records = bench._count(args.records) if args.records else chats
    out = Path(args.out).resolve()
    work = out / "work"
    out.mkdir(parents=True, exist_ok=True)
    data = bench._exports(work, chats, records, args.seed, False)
    config = bench._write_config(data["dir"])
    command = bench._chatsell_command(None)
    machine = bench._machine(args.pg_url)
    engines = [("local", None)] + [("dask", int(n)) for n in args.workers.split(",") if n.strip()]
    results = []
    for engine, workers in engines:
        results.append(_one(command, config, data, engine, workers, args, work))
    reference = results[0].get("report") or {}
    for result in results:
        report = result.get("report") or {}
        result["same_as_local"] = bool(report) and all(
            report.get(k) == reference.get(k) for k in ("outcomes", "writes", "assignments")
        )
        result.pop("report", None)
    payload = {"machine": machine, "chats": chats, "records": records, "window": args.window,
               "results": results}  # fmt: skip
    (out / "backfill.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"Backfill of {chats:,} chats x {records:,} Sell records into PostgreSQL, windows of "
        f"{args.window}; {machine['cpu_model']} x{machine['nproc']}, {machine['ram_gib']} GiB.",
        "",
        "| engine | wall s | chats/s | CPU s | peak RSS MiB | same as local |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        name = r["engine"] if r["engine"] == "local" else f"dask, {r['workers']} workers"
        lines.append(
            f"| {name} | {r['wall_s']} | {r['chats_per_s']:,} | {r['cpu_s']} | "
            f"{r['peak_rss_mib']} | {'yes' if r['same_as_local'] else 'NO'} |"
        )
    (out / "backfill.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0 if all(r["exit_code"] == 0 and r["same_as_local"] for r in results) else 1


def _one(command, config, data, engine, workers, args, work) -> dict[str, Any]:
    schema = f"bench_backfill_{uuid.uuid4().hex[:8]}"
    url = bench._pg_schema_url(args.pg_url, schema)
    run_dir = work / f"backfill_{engine}_{workers or 0}"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {"CHATSELL_DATABASE_URL": url}
    base = [*command, "--config", str(config), "--log-format", "json", "-q"]
    try:
        bench._run_child([*base, "db", "upgrade"], run_dir, args.timeout, env)
        argv = [*base, "backfill", "--chats", str(data["dir"] / "chat"),
                "--sell", str(data["dir"] / "sell"), "--since", SINCE, "--until", UNTIL,
                "--window", args.window, "--engine", engine, "--json"]  # fmt: skip
        if workers:
            argv += ["--workers", str(workers)]
        run = bench._run_child(argv, run_dir, args.timeout, env)
    finally:
        bench._pg_drop_schema(args.pg_url, schema)
    chats = ((run.get("report") or {}).get("inputs") or {}).get("chats_read") or 0
    bench._say(f"{engine} {workers or ''}: exit {run['exit_code']} {run['wall_s']} s")
    if run["exit_code"]:
        bench._say("   " + " | ".join(run["stderr_tail"][-3:]))
    return {
        "engine": engine,
        "workers": workers,
        "exit_code": run["exit_code"],
        "wall_s": round(run["wall_s"], 1),
        "chats_per_s": int(chats / run["wall_s"]) if run["wall_s"] else 0,
        "cpu_s": round(run["cpu_user_s"] + run["cpu_sys_s"], 1),
        "peak_rss_mib": run["peak_rss_mib"],
        "report": run.get("report"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
