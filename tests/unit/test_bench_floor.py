"""benchmarks/run.py's CPU floor: a run's CPU, with the PostgreSQL server's, over the CPUs the
results were measured on, against the reference's wall time; and the server's CPU read here."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench = _module("run")

MACHINE = {
    "nproc": 2, "cpu_model": "test", "ram_gib": 1, "os": "Linux", "python": "3.11",
    "sqlite": "3.40", "postgresql": None, "packages": {}, "git_commit": None, "git_dirty": False,
    "date": "2026-12-07",
    "python_loop_s": 0.3, "disk_write_mib_s": 1000, "bytecode_compiled": True,
}  # fmt: skip


def _run(wall: float, user: float, system: float, server: float | None) -> dict:
    return {"exit_code": 0, "wall_s": wall, "cpu_user_s": user, "cpu_sys_s": system,
            "server_cpu_s": server, "peak_rss_mib": 100.0, "report": None}  # fmt: skip


def _row(store: str, server: float | None) -> list[str]:
    result = {
        "shape": "light", "store": store, "chats": 1000, "records": 1000,
        "reference": _run(50.0, 45.0, 5.0, 10.0 if server is not None else None),
        "first": _run(180.0, 150.0, 10.0, server),
        "full": _run(120.0, 90.0, 10.0, server),
    }  # fmt: skip
    table = bench._markdown(MACHINE, [result])
    # (the first such row: the timings; the checks table's comes after)
    row = next(line for line in table.splitlines() if line.startswith(f"| light | {store} |"))
    header = next(line for line in table.splitlines() if line.startswith("| shape | store |"))
    return dict(zip(header.split("|"), row.split("|"), strict=True))


def test_the_floor_is_the_cpu_with_the_servers_over_the_recorded_cpus():
    postgres = _row("postgresql", 40.0)
    assert postgres[" CPU floor x ref "] == " 2.00x "  # (150 + 10 + 40) / 2 / 50
    assert postgres[" --full CPU floor x ref "] == " 1.40x "  # (90 + 10 + 40) / 2 / 50
    assert postgres[" x ref "] == " 3.6x "
    sqlite = _row("sqlite", None)  # no server measured: the run's own CPU
    assert sqlite[" CPU floor x ref "] == " 1.60x "
    assert sqlite[" --full CPU floor x ref "] == " 1.00x "


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_the_local_servers_cpu_is_read_and_only_grows(pg_url):
    """The suite's PostgreSQL runs on this machine (CI starts it): its CPU is visible and,
    after it has answered queries, not less than before."""
    import sqlalchemy as sa

    before = bench._server_cpu_s()
    if before is None and not os.environ.get("CI"):
        pytest.skip("no postgres process visible on this machine (a server elsewhere)")
    assert before is not None and before >= 0
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM generate_series(1, 2000000)")).scalar()
    finally:
        engine.dispose()
    assert bench._server_cpu_s() >= before
