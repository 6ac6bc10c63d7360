"""End-to-end benchmark of `chatsell sync`: generated exports, a real subprocess, both stores.

For each size and store it times, as separate `chatsell` processes:
  1. `sync` of freshly generated exports into an empty store (the first load),
  2. `sync` again with nothing changed (should read no file),
  3. `sync --full` (re-reads everything, should write nothing new),
recording wall time, the child's own CPU time and peak RSS (from wait4 on that one child), and
the run report the child prints; each run also writes its HTML and JSON report files
(`--report-dir`), as a scheduled run does. Before them it times, the same way, the hand-rolled
reference script (benchmarks/reference.py) on the same exports into the same kind of store, so
each row gives chatsell's time as a ratio of it. Results go to benchmarks/out/results.json and
results.md.

Two export shapes (`--shape`): `realistic` (etl.generate: many gzipped pages of heavy chats,
Sell in pages) and `light` (benchmarks/light_shape.py: 16 large NDJSON files of light chats,
the leads as one Smart List CSV, the contacts as one API envelope).

    python benchmarks/run.py --sizes 10000,100000 --stores sqlite,postgresql
    python benchmarks/run.py --shape light --sizes 1M --stores sqlite

Nothing here asserts a timing; checks (outcomes as the generator intended, an unchanged sync
reading nothing, --full writing nothing) are recorded next to the numbers.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_OUT = ROOT / "benchmarks" / "out"
REFERENCE = ROOT / "benchmarks" / "reference.py"
SHAPES = ("realistic", "light")
MIB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sizes = [_count(s) for s in args.sizes.split(",") if s.strip()]
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    for store in stores:
        if store not in ("sqlite", "postgresql"):
            raise SystemExit(f"unknown store {store!r}: use sqlite and/or postgresql")
    out = Path(args.out).resolve()
    work = Path(args.work_dir).resolve() if args.work_dir else out / "work"
    out.mkdir(parents=True, exist_ok=True)
    command = _chatsell_command(args.chatsell)
    machine = _machine(args.pg_url if "postgresql" in stores else None)
    machine["bytecode_compiled"] = _compile_bytecode()
    work.mkdir(parents=True, exist_ok=True)
    machine["disk_write_mib_s"] = _disk_write_mib_s(work)
    _say(
        f"machine: {machine['cpu_model']} x{machine['nproc']}, {machine['ram_gib']} GiB RAM, "
        f"Python loop {machine['python_loop_s']} s, disk {machine['disk_write_mib_s']} MiB/s"
    )
    _say(f"chatsell: {' '.join(command)}")

    results_path = out / "results.json"
    previous = []
    if args.append and results_path.is_file():
        previous = json.loads(results_path.read_text(encoding="utf-8")).get("results", [])
    results: list[dict[str, Any]] = []
    for chats in sizes:
        records = _count(args.records) if args.records else chats
        data = _exports(work, chats, records, args.seed, args.regenerate, args.shape)
        config = Path(args.config).resolve() if args.config else _write_config(data["dir"])
        for store in stores:
            _say(f"== {store}: {chats:,} chats, {records:,} Sell records, {args.shape} shape")
            result = _bench_store(
                store,
                command,
                data,
                config,
                work,
                args.pg_url,
                args.timeout,
                args.keep,
                reference=not args.no_reference,
            )
            results.append(result)
            _write(results_path, out / "results.md", machine, _merge(previous, results), args)
    if not results:
        _say("nothing to run")
        return 0
    _say(f"wrote {results_path} and {out / 'results.md'}")
    print((out / "results.md").read_text(encoding="utf-8"))
    failed = [
        r for r in results if any(r[k].get("exit_code") for k in (*_PHASES, "reference") if k in r)
    ]
    return 1 if failed else 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Sizes accept k/M suffixes: --sizes 10k,100k,1M.",
    )
    parser.add_argument("--sizes", default="10000,100000", help="chat counts, comma-separated")
    parser.add_argument(
        "--records", help="Sell records (leads+contacts+deals); default: as many as chats"
    )
    parser.add_argument("--stores", default="sqlite,postgresql", help="sqlite and/or postgresql")
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="realistic",
        help="realistic: etl.generate's pages; light: benchmarks/light_shape.py (few large "
        "NDJSON files, one large leads CSV)",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="do not time benchmarks/reference.py"
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server to use")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where results.json/.md go")
    parser.add_argument("--work-dir", help="generated exports and SQLite files (default OUT/work)")
    parser.add_argument("--config", help="chatsell config for the runs (default: one written "
                        "for the generated Sell users: pools, rules, integration user)")  # fmt: skip
    parser.add_argument(
        "--chatsell", help="command to run chatsell (default: `chatsell` on PATH, else "
        "`python -m etl`)"
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per chatsell run")
    parser.add_argument("--regenerate", action="store_true", help="generate even if present")
    parser.add_argument("--keep", action="store_true", help="keep the stores (schema, db file)")
    parser.add_argument(
        "--append", action="store_true", help="merge into results.json instead of replacing it"
    )
    return parser.parse_args(argv)


def _count(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def _say(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- inputs --------------------------------------------------------------------------------------


def _exports(
    work: Path, chats: int, records: int, seed: int, regenerate: bool, shape: str = "realistic"
) -> dict[str, Any]:
    """Generated exports for this size and shape, reused when a manifest says they are the
    same."""
    if shape == "light":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from light_shape import GENERATOR, generate

        target = work / f"light_c{chats}_r{records}_s{seed}"
    else:
        from etl.generate import GENERATOR, generate

        target = work / f"exports_c{chats}_r{records}_s{seed}"
    manifest_path = target / "manifest.json"
    if manifest_path.is_file() and not regenerate:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        params = manifest.get("params", {})
        if (manifest.get("generator"), params.get("chats"), params.get("records"),
            manifest.get("seed")) == (GENERATOR, chats, records, seed):  # fmt: skip
            _say(f"reusing {target}")
            return {"dir": target, "manifest": manifest, "generate_s": None, "shape": shape}
    _say(f"generating {chats:,} chats and {records:,} records ({shape}) into {target}")
    started = time.perf_counter()
    if shape == "light":
        manifest = generate(target, chats, records, seed)
    else:
        manifest = generate(target, chats, records, seed, overwrite=True)
    seconds = round(time.perf_counter() - started, 2)
    _say(f"generated in {seconds} s")
    return {"dir": target, "manifest": manifest, "generate_s": seconds, "shape": shape}


def _write_config(data_dir: Path) -> Path:
    """A config that exercises assignment: pools of the generated Sell users, two rules."""
    users = [
        item["data"]
        for item in json.loads((data_dir / "sell" / "users.json").read_text("utf-8"))["items"]
    ]
    by_group: dict[str, list[str]] = {}
    integration = None
    for user in users:
        if user["email"].startswith("chat-integration@"):
            integration = user["email"]
        elif user["status"] == "active" and user.get("group"):
            by_group.setdefault(user["group"]["name"], []).append(user["email"])
    japan = by_group.get("Japan desk", [])
    inbound = by_group.get("Inbound EN", [])
    key_accounts = by_group.get("Key accounts", [])
    lines = [
        "# written by benchmarks/run.py for the generated exports",
        "[chat]",
        'subdomain = "example-corp"',
        "[sell]",
        f"integration_user = {json.dumps(integration)}" if integration else "",
        "[[assignment.rules]]",
        'name = "Japan desk"',
        'when = { department = ["Sales JP"], country_code = ["JP"] }',
        'pool = "jp-sales"',
        "[[assignment.rules]]",
        'name = "Enterprise tag"',
        'when = { tags_any = ["enterprise"] }',
        'pool = "key-accounts"',
        "[assignment]",
        'default_pool = "inbound"',
        '[assignment.pools."jp-sales"]',
        f"members = {json.dumps(japan)}",
        'strategy = "round_robin"',
        '[assignment.pools."key-accounts"]',
        f"members = {json.dumps(key_accounts)}",
        'strategy = "round_robin"',
        "[assignment.pools.inbound]",
        f"members = {json.dumps(inbound)}",
        'strategy = "weighted"',
        f"weights = {json.dumps([2] + [1] * (len(inbound) - 1))}",
    ]
    path = data_dir / "chatsell.bench.toml"
    path.write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")
    return path


# -- running chatsell ----------------------------------------------------------------------------

_PHASES = ("first", "unchanged", "full")


def _chatsell_command(given: str | None) -> list[str]:
    if given:
        return given.split()
    found = shutil.which("chatsell")
    return [found] if found else [sys.executable, "-m", "etl"]


def _child_env() -> dict[str, str]:
    """The caller's environment without CHATSELL_* (the runs use only what is given here)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CHATSELL_")}


def _run_child(
    argv: list[str], cwd: Path, timeout: float, env: dict[str, str], server: bool = False
) -> dict[str, Any]:
    """Run one chatsell process; wall time, its own CPU and peak RSS (wait4), output.
    ``server``: also the CPU the PostgreSQL server on this machine spent meanwhile."""
    stdout_path, stderr_path = cwd / "stdout.txt", cwd / "stderr.txt"
    load = os.getloadavg()[0]
    server_before = _server_cpu_s() if server else None
    code = _code_version()  # the child imports the code as it is now; others may be editing it
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
            env={**_child_env(), **env},
            start_new_session=True,
        )
        timer = threading.Timer(timeout, _kill_group, args=(child.pid,))
        timer.start()
        tree = _TreeSampler(child.pid)
        tree.start()
        try:
            _pid, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
            tree.stop()
        wall = time.perf_counter() - started
    server_after = _server_cpu_s() if server_before is not None else None
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    out = stdout_path.read_text("utf-8", errors="replace")
    err = stderr_path.read_text("utf-8", errors="replace")
    return {
        "exit_code": child.returncode,
        "wall_s": round(wall, 3),
        "cpu_user_s": round(usage.ru_utime, 3),
        "cpu_sys_s": round(usage.ru_stime, 3),
        # the PostgreSQL server's processes on this machine (None: not measured, or not here)
        "server_cpu_s": (
            round(server_after - server_before, 2) if server_after is not None else None
        ),
        "peak_rss_mib": round(usage.ru_maxrss * 1024 / MIB, 1),  # Linux: ru_maxrss in KiB
        # the run's processes together (parsers, writer): sampled, so a lower bound
        "peak_tree_rss_mib": round(tree.peak_kib / 1024, 1) if tree.peak_kib else None,
        # the same with each page shared by fork counted once, split between its holders
        "peak_tree_pss_mib": round(tree.peak_pss_kib / 1024, 1) if tree.peak_pss_kib else None,
        "loadavg_before": round(load, 2),
        "code": code,
        "report": _last_json(out),
        "stderr_tail": err.strip().splitlines()[-15:] if child.returncode else [],
    }


def _server_cpu_s() -> float | None:
    """CPU seconds spent so far by the PostgreSQL server on this machine: its processes' own,
    and the postmaster's reaped children's (a backend that ended with its connection). None
    when no ``postgres`` process is visible (a server elsewhere, or not Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, found = 0, False
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if not stat[stat.index("(") + 1 : stat.rindex(")")].startswith("postgres"):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        user, system, children_user, children_system = (int(v) for v in fields[11:15])
        total += user + system
        try:
            parent = (Path("/proc") / fields[1] / "comm").read_text().strip()
        except OSError:
            parent = ""
        if not parent.startswith("postgres"):  # the postmaster: its ended backends
            total += children_user + children_system
        found = True
    return total / tick if found else None


class _TreeSampler(threading.Thread):
    """The largest sums of VmRSS and of Pss over a process and its descendants, sampled every
    0.5 s.

    wait4's ru_maxrss is the largest *single* process of the tree; a run's parsing workers and
    writer process live beside it, so this is what the machine holds at once (Linux /proc only;
    sampling errs low). RSS counts a page shared by fork in each process that maps it, so its
    sum errs high; Pss splits such a page between them, so its sum is what the tree holds.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self.peak_pss_kib = pid, 0, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.5):
            pids = _tree(self.pid)
            self.peak_kib = max(self.peak_kib, sum(_rss_kib(p) for p in pids))
            self.peak_pss_kib = max(self.peak_pss_kib, sum(_pss_kib(p) for p in pids))

    def stop(self) -> None:
        self._done.set()
        self.join()


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    children = Path(f"/proc/{current}/task/{task}/children").read_text()
                    todo.extend(int(c) for c in children.split())
    return found


def _rss_kib(pid: int) -> int:
    return _proc_kib(pid, "status", "VmRSS:")


def _pss_kib(pid: int) -> int:
    return _proc_kib(pid, "smaps_rollup", "Pss:")


def _proc_kib(pid: int, name: str, field: str) -> int:
    """A kB figure of /proc/PID/NAME (0 once the process is gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _code_version() -> dict[str, Any]:
    """The git commit and a hash of the etl/ sources (commits and uncommitted edits alike)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "etl").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return {"commit": _git("rev-parse", "--short", "HEAD"), "etl_sha": digest.hexdigest()[:12]}


def _kill_group(pid: int) -> None:
    """The timeout: end the child we started (and its own children), by its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _last_json(text: str) -> dict[str, Any] | None:
    """The run report: the last JSON object on stdout (--json prints it last)."""
    text = text.strip()
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else None
    except json.JSONDecodeError:
        pass
    starts = [m.start() for m in re.finditer(r"^\{", text, flags=re.MULTILINE)]
    for start in reversed(starts):
        try:
            value = json.loads(text[start:])
            return value if isinstance(value, dict) else None
        except json.JSONDecodeError:
            continue
    return None


def _bench_store(
    store: str,
    command: list[str],
    data: dict[str, Any],
    config: Path,
    work: Path,
    pg_url: str,
    timeout: float,
    keep: bool,
    reference: bool = True,
) -> dict[str, Any]:
    manifest = data["manifest"]
    chats, records = manifest["params"]["chats"], manifest["params"]["records"]
    shape = data.get("shape", "realistic")
    prefix = "run" if shape == "realistic" else f"run_{shape}"
    run_dir = work / f"{prefix}_{store}_c{chats}_r{records}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    result: dict[str, Any] = {
        "shape": shape,
        "store": store,
        "chats": chats,
        "records": records,
        "seed": manifest["seed"],
        "generate_s": data["generate_s"],
        "exports_mib": round(_size(data["dir"]) / MIB, 1),
        "config": str(config),
    }
    schema = None
    if store == "sqlite":
        url = f"sqlite:///{run_dir / 'chatsell.db'}"
    else:
        schema = f"bench_{chats}_{uuid.uuid4().hex[:8]}"
        url = _pg_schema_url(pg_url, schema)
    # the store URL goes in the environment, not argv: no password in the process list
    env = {"CHATSELL_DATABASE_URL": url}
    base = [*command, "--config", str(config), "--log-format", "json", "-q"]
    # every run leaves its report files, as a scheduled run does (the page counts every outcome)
    sync = ["sync", "--chats", str(data["dir"] / "chat"), "--sell", str(data["dir"] / "sell"),
            "--report-dir", str(run_dir / "reports")]  # fmt: skip
    try:
        # the exports in the page cache for every timed run alike (the first one would pay it)
        result["warm_s"] = _warm(data["dir"])
        if reference:
            run = _run_reference(store, data["dir"], run_dir, pg_url, timeout, keep)
            result["reference"] = run
            _say(
                f"reference exit {run['exit_code']}  {run['wall_s']:8.1f} s  "
                f"peak {run['peak_rss_mib']:7.1f} MiB  (load before {run['loadavg_before']})"
            )
            if run["exit_code"]:
                _say("   " + " | ".join(run["stderr_tail"][-3:]))
        upgrade = _run_child([*base, "db", "upgrade"], run_dir, timeout, env)
        result["upgrade_s"] = upgrade["wall_s"]
        if upgrade["exit_code"]:
            result["first"] = upgrade
            _say(f"db upgrade failed: {upgrade['stderr_tail'][-1:]}")
            return result
        for phase, extra in (("first", []), ("unchanged", []), ("full", ["--full"])):
            run = _run_child(
                [*base, *sync, *extra, "--json"], run_dir, timeout, env, server=schema is not None
            )
            result[phase] = run
            _say(
                f"{phase:9s} exit {run['exit_code']}  {run['wall_s']:8.1f} s  "
                f"peak {run['peak_rss_mib']:7.1f} MiB  (load before {run['loadavg_before']})"
            )
            if run["exit_code"] not in (0, 3):
                _say("   " + " | ".join(run["stderr_tail"][-3:]))
                break
        result["checks"] = _checks(result, manifest)
        return result
    finally:
        if schema and not keep:
            _pg_drop_schema(pg_url, schema)
        if store == "sqlite" and not keep:
            for path in run_dir.glob("chatsell.db*"):
                path.unlink()


def _warm(directory: Path) -> float:
    """Read every file under ``directory`` once (into the page cache); seconds it took."""
    started = time.perf_counter()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                while handle.read(1 << 24):
                    pass
    return round(time.perf_counter() - started, 2)


def _run_reference(
    store: str, data_dir: Path, run_dir: Path, pg_url: str, timeout: float, keep: bool
) -> dict[str, Any]:
    """Time benchmarks/reference.py on these exports into a fresh store of this kind."""
    argv = [sys.executable, str(REFERENCE), "--chats", str(data_dir / "chat"),
            "--sell", str(data_dir / "sell")]  # fmt: skip
    env: dict[str, str] = {}
    schema = None
    if store == "sqlite":
        argv += ["--db", str(run_dir / "reference.db")]
    else:
        schema = f"ref_{uuid.uuid4().hex[:12]}"
        argv += ["--schema", schema]
        # as for chatsell: the URL in the environment, not on the command line
        env["REFERENCE_PG_URL"] = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    ref_dir = run_dir / "reference"
    ref_dir.mkdir(exist_ok=True)
    try:
        return _run_child(argv, ref_dir, timeout, env, server=schema is not None)
    finally:
        if schema and not keep:
            _pg_drop_schema(pg_url, schema)
        if store == "sqlite" and not keep:
            for path in run_dir.glob("reference.db*"):
                path.unlink()


def _checks(result: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """What the reports say about correctness, next to the timings (never asserted)."""
    checks: dict[str, Any] = {}
    first = (result.get("first") or {}).get("report") or {}
    if first:
        outcomes = {k: v for k, v in first.get("outcomes", {}).items() if v}
        expected = {k: v for k, v in manifest["expected_outcomes"].items() if v}
        checks["first_outcomes_as_generated"] = outcomes == expected
        if outcomes != expected:
            checks["first_outcomes"], checks["expected_outcomes"] = outcomes, expected
        checks["first_balanced"] = first.get("accounting", {}).get("balanced")
        checks["first_chats_read"] = first.get("inputs", {}).get("chats_read")
        reference = (result.get("reference") or {}).get("report") or {}
        if reference:
            # the reference did the same work: as many activities and new leads as the sync
            writes = first.get("writes", {})
            ours = (writes.get("activities_inserted"), writes.get("leads_created"))
            theirs = (reference.get("activities"), reference.get("leads_created"))
            checks["reference_rows_as_sync"] = ours == theirs
            checks["reference_rows"] = {"activities": theirs[0], "leads": theirs[1]}
    unchanged = (result.get("unchanged") or {}).get("report") or {}
    if unchanged:
        inputs = unchanged.get("inputs", {})
        checks["unchanged_chat_files_read"] = inputs.get("chat_files")
        checks["unchanged_chats_read"] = inputs.get("chats_read")
        checks["unchanged_wrote"] = _new_writes(unchanged)
    full = (result.get("full") or {}).get("report") or {}
    if full:
        checks["full_chats_read"] = full.get("inputs", {}).get("chats_read")
        checks["full_wrote"] = _new_writes(full)
    return checks


def _new_writes(report: dict[str, Any]) -> dict[str, int]:
    writes = report.get("writes", {})
    return {k: v for k, v in writes.items() if v and k != "activities_unchanged"}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- PostgreSQL ----------------------------------------------------------------------------------


def _pg_schema_url(pg_url: str, schema: str) -> str:
    """A URL whose search_path is a new, empty schema."""
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()
    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options=-csearch_path%3D{schema}"


def _pg_drop_schema(pg_url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


# -- the machine ---------------------------------------------------------------------------------


def _machine(pg_url: str | None) -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu_model = platform.processor()
    ram_kib = 0
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        ram_kib = int(match.group(1)) if match else 0
    except OSError:
        pass
    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu_model": cpu_model,
        "ram_gib": round(ram_kib / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": None,
        "packages": _versions("pandas", "SQLAlchemy", "psycopg", "orjson", "chatsell"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "python_loop_s": _python_loop_s(),
    }
    if pg_url:
        try:
            import sqlalchemy as sa

            engine = sa.create_engine(pg_url)
            with engine.connect() as conn:
                info["postgresql"] = conn.execute(sa.text("SHOW server_version")).scalar()
            engine.dispose()
        except Exception as exc:  # noqa: BLE001 - reported, the PostgreSQL runs then fail
            info["postgresql"] = f"unreachable: {type(exc).__name__}"
    return info


def _compile_bytecode() -> bool:
    """Compile etl/ and jobs/ to bytecode before the runs, as installing a wheel does. From an
    editable install under PYTHONDONTWRITEBYTECODE (set on this machine) every start would
    compile them again: ~0.1 s of each run, a tenth of an unchanged sync."""
    return all(compileall.compile_dir(ROOT / name, quiet=1) for name in ("etl", "jobs"))


def _disk_write_mib_s(directory: Path, mib: int = 256, rounds: int = 2) -> float:
    """MiB/s writing ``mib`` MiB into ``directory`` and fsyncing it (the best of ``rounds``): the
    disk the stores and exports are on, whose speed varies between days as the CPU's does (a
    run can wait on it a third of its time, which the Python loop does not show)."""
    path = directory / f".bench-disk-{os.getpid()}"
    block = os.urandom(1 << 20)
    best = 0.0
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            with open(path, "wb") as out:
                for _ in range(mib):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            best = max(best, mib / (time.perf_counter() - started))
    finally:
        path.unlink(missing_ok=True)
    return round(best, 1)


def _python_loop_s(rounds: int = 3) -> float:
    """Seconds for a fixed pure-Python loop (the best of ``rounds``): this machine's speed the
    day it ran. Its speed varies by 2-3x between days; compare runs by this first."""

    def loop() -> float:
        started = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        return time.perf_counter() - started

    return round(min(loop() for _ in range(rounds)), 3)


def _versions(*names: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


# -- results -------------------------------------------------------------------------------------


def _merge(previous: list[dict], current: list[dict]) -> list[dict]:
    key = lambda r: (r.get("shape", "realistic"), r["store"], r["chats"], r["records"])  # noqa: E731
    fresh = {key(r) for r in current}
    return [r for r in previous if key(r) not in fresh] + current


def _write(
    json_path: Path, md_path: Path, machine: dict, results: list[dict], args: argparse.Namespace
) -> None:
    document = {
        "machine": machine,
        "params": {
            "seed": args.seed,
            "sizes": args.sizes,
            "records": args.records,
            "stores": args.stores,
            "shape": args.shape,
        },  # fmt: skip
        "results": results,
    }
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    md_path.write_text(_markdown(machine, results), "utf-8")


def _markdown(machine: dict[str, Any], results: list[dict[str, Any]]) -> str:
    def seconds(run: dict | None) -> str:
        if not run:
            return "-"
        flag = "" if run.get("exit_code") in (0, 3) else f" (exit {run['exit_code']})"
        return f"{run['wall_s']:.1f}{flag}"

    def ratio(run: dict | None, reference: dict | None) -> str:
        if not run or not reference or run.get("exit_code") not in (0, 3):
            return "-"
        if reference.get("exit_code") or not reference.get("wall_s"):
            return "-"
        return f"{run['wall_s'] / reference['wall_s']:.1f}x"

    def cpu_ratio(run: dict | None, reference: dict | None) -> str:
        if ratio(run, reference) == "-":
            return "-"
        cpu = run["cpu_user_s"] + run["cpu_sys_s"]
        return f"{cpu / (reference['cpu_user_s'] + reference['cpu_sys_s'] or 1):.1f}x"

    def floor(run: dict | None, reference: dict | None) -> str:
        """The run's CPU (and the server's) over the machine's CPUs, x the reference's wall:
        what no schedule of the same work on this machine goes below."""
        if ratio(run, reference) == "-":
            return "-"
        cpu = run["cpu_user_s"] + run["cpu_sys_s"] + (run.get("server_cpu_s") or 0)
        return f"{cpu / (machine.get('nproc') or 1) / reference['wall_s']:.2f}x"

    rows = [
        "| shape | store | chats | records | reference s | reference peak MiB | first sync s "
        "| x ref | x ref CPU | CPU floor x ref | chats/s | peak RSS MiB "
        "| all processes MiB (RSS / PSS) | unchanged sync s | --full s | --full x ref "
        "| --full CPU floor x ref |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results, key=_order):
        first, reference = r.get("first"), r.get("reference")
        rate = "-"
        if first and first.get("exit_code") in (0, 3) and first["wall_s"]:
            read = ((first.get("report") or {}).get("inputs") or {}).get("chats_read", r["chats"])
            rate = f"{read / first['wall_s']:,.0f}"
        peak = max((r[p]["peak_rss_mib"] for p in _PHASES if r.get(p)), default=None)
        tree = " / ".join(
            str(max(values)) if values else "-"
            for values in (
                [r[p][key] for p in _PHASES if r.get(p) and r[p].get(key) is not None]
                for key in ("peak_tree_rss_mib", "peak_tree_pss_mib")
            )
        )
        rows.append(
            f"| {r.get('shape', 'realistic')} | {r['store']} | {r['chats']:,} | {r['records']:,} "
            f"| {seconds(reference)} | {reference['peak_rss_mib'] if reference else '-'} "
            f"| {seconds(first)} | {ratio(first, reference)} | {cpu_ratio(first, reference)} "
            f"| {floor(first, reference)} | {rate} | "
            f"{peak if peak is not None else '-'} | {tree} | "
            f"{seconds(r.get('unchanged'))} | "
            f"{seconds(r.get('full'))} | {ratio(r.get('full'), reference)} "
            f"| {floor(r.get('full'), reference)} |"
        )
    checks = [
        "| shape | store | chats | outcomes as generated | reference wrote as the sync "
        "(activities / leads) | unchanged sync: files / chats read, writes "
        "| --full: chats read, new writes | peak RSS MiB (first / unchanged / full) |",
        "|---|---|---:|---|---|---|---|---|",
    ]
    for r in sorted(results, key=_order):
        c = r.get("checks", {})
        peaks = " / ".join(f"{r[p]['peak_rss_mib']:.0f}" if r.get(p) else "-" for p in _PHASES)
        rows_ref = c.get("reference_rows")
        same = _yes(c.get("reference_rows_as_sync"))
        if rows_ref:
            same += f" ({rows_ref['activities']:,} / {rows_ref['leads']:,})"
        checks.append(
            f"| {r.get('shape', 'realistic')} | {r['store']} | {r['chats']:,} | "
            f"{_yes(c.get('first_outcomes_as_generated'))} | {same} | "
            f"{c.get('unchanged_chat_files_read', '-')} / {c.get('unchanged_chats_read', '-')}, "
            f"{_writes(c.get('unchanged_wrote'))} | {c.get('full_chats_read', '-')}, "
            f"{_writes(c.get('full_wrote'))} | {peaks} |"
        )
    versions: dict[str, list[str]] = {}  # etl/*.py hash -> runs
    commits: dict[str, set[str]] = {}
    for r in sorted(results, key=_order):
        for phase in _PHASES:
            code = (r.get(phase) or {}).get("code")
            if code:
                versions.setdefault(code["etl_sha"], []).append(
                    f"{r.get('shape', 'realistic')} {r['store']} {r['chats']:,} {phase}"
                )
                commits.setdefault(code["etl_sha"], set()).add(str(code["commit"]))
    code_note = []
    if len(versions) > 1:
        code_note = ["**The runs did not all run the same code** (hash of etl/*.py, commit):", ""]
        code_note += [
            f"- {sha} ({', '.join(sorted(commits[sha]))}): {', '.join(runs)}"
            for sha, runs in versions.items()
        ]
        code_note.append("")
    elif versions:
        sha = next(iter(versions))
        code_note = [
            f"All runs ran the same etl/ code ({sha}, {', '.join(sorted(commits[sha]))}).",
            "",
        ]
    pkgs = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    lines = [
        "# chatsell sync benchmark",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['ram_gib']} GiB RAM, "
        f"{machine['os']}. Python {machine['python']}, SQLite {machine['sqlite']}, "
        f"PostgreSQL {machine['postgresql'] or '-'}. {pkgs}. "
        f"Commit {machine['git_commit'] or '?'}{' (uncommitted changes)' if machine['git_dirty'] else ''}, "
        f"{machine['date']}. A pure-Python loop of 10,000,000 additions took "
        f"{machine.get('python_loop_s', '?')} s (this machine's speed varies between days: "
        "compare runs by it); writing to the disk of the work directory ran at "
        f"{machine.get('disk_write_mib_s', '?')} MiB/s (256 MiB, fsynced). etl/ was compiled "
        "to bytecode before the runs (as a wheel install does)"
        + ("" if machine.get("bytecode_compiled") else ": **it could not be**")
        + ".",
        "",
        "Each cell is one `chatsell sync` subprocess, end to end (start-up, reading, planning, "
        "writing, report). chats/s = chats read by the first sync / its wall time; peak RSS is the "
        "largest of the three runs' own peaks (wait4 of each child: its largest single process); "
        "all processes is the largest sum over the run's process tree (parsers, writer), sampled "
        "every 0.5 s: of RSS (a page shared by fork counted in every process) and of PSS (split "
        "between them).",
        "",
        "reference s is `benchmarks/reference.py` on the same exports into a fresh store of the "
        "same kind, timed the same way just before the syncs: one process, orjson, a dict join, "
        "one executemany (SQLite) or COPY (PostgreSQL) per table, no outcomes, reports or Sell "
        "snapshot. x ref = first sync s / reference s; x ref CPU = the same for user + system CPU "
        "seconds (chatsell's with its parsing workers and writer; steadier than wall time on a "
        "shared machine); CPU floor x ref = that CPU, with the PostgreSQL server's when it runs "
        "on this machine, divided by the machine's CPUs, over the reference's wall time: what no "
        "schedule of the same work here can go below; --full x ref = --full s / reference s. "
        "The realistic shape is `etl.generate`'s (gzipped pages of 1,000 heavy chats, Sell in "
        "pages); the light one `benchmarks/light_shape.py`'s (16 NDJSON files of ~1.3 KB chats "
        "at 1M, the leads as one CSV, the contacts as one envelope).",
        "",
        *rows,
        "",
        "Checks (from the run reports):",
        "",
        *checks,
        "",
        *code_note,
        "Load average before each run is in results.json (`loadavg_before`): the machine may be "
        "shared, and a high load inflates wall times.",
        "",
    ]
    return "\n".join(lines)


def _order(r: dict[str, Any]) -> tuple:
    return (r.get("shape", "realistic") != "realistic", r["chats"], r["records"], r["store"])


def _yes(value: Any) -> str:
    return {True: "yes", False: "**no**", None: "-"}.get(value, str(value))


def _writes(writes: dict[str, int] | None) -> str:
    if writes is None:
        return "-"
    return "none" if not writes else ", ".join(f"{k} {v}" for k, v in writes.items())


if __name__ == "__main__":
    sys.exit(main())
