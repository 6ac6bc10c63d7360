"""benchmarks/floor.py at a tiny size: it parses every exported value, copies every row a real
sync stored, and its bound is what it says (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from conftest import PG_URL

ROOT = Path(__file__).resolve().parents[2]


def _floor():
    spec = importlib.util.spec_from_file_location("floor", ROOT / "benchmarks" / "floor.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["floor"] = module  # its parsing workers find their function by module name
    spec.loader.exec_module(module)
    return module


@pytest.mark.store  # it takes pg_url by name at run time: the conftest cannot see it
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_floor_parses_every_value_and_copies_every_row(tmp_path, request, store):
    if store == "postgresql":
        request.getfixturevalue("pg_url")  # skips outside CI, fails in CI, when PG is down
    floor = _floor()
    out = tmp_path / "out"
    code = floor.main(["--size", "300", "--records", "200", "--stores", store,
                       "--pg-url", PG_URL, "--out", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads((out / "floor.json").read_text())["result"]
    manifest = json.loads((out / "work" / "exports_c300_r200_s1" / "manifest.json").read_text())
    chat, sell = manifest["chat"], manifest["sell"]
    # every chat, agent and department value but the cut NDJSON lines (a sync's rejects)
    assert result["parse"]["chats"]["values"] == (
        chat["records"] - chat["malformed_lines"] + chat["agents"] + chat["departments"]
    )
    # and every Sell record, the contacts' Smart List CSV's too (a sync reads it)
    assert result["parse"]["sell"]["values"] == sum(
        sell[k] for k in ("leads", "contacts", "deals", "users", "csv_contacts")
    )
    assert result[store]["sync"]["exit_code"] == 0
    tables = result[store]["write"]["tables"]
    assert {"chats", "activities", "run_outcomes", "leads", "contacts"} <= set(tables)
    assert tables["run_outcomes"]["rows"] == chat["chats"]  # one a chat (and a reject)
    assert all(t["copied"] == t["rows"] > 0 for t in tables.values()), tables
    bound = result["bound"][store]
    parse_cpu = result["parse"]["chats"]["cpu_s"] + result["parse"]["sell"]["cpu_s"]
    cpus = len(os.sched_getaffinity(0))
    assert bound["bound_s"] >= bound["write_s"] == result[store]["write"]["total_s"]
    assert bound["bound_s"] >= round((parse_cpu + bound["write_s"]) / cpus, 2) - 0.01
    assert bound["full_bound_s"] == round(parse_cpu / cpus, 2)  # --full: parse, no write
    assert f"wall ({result['workers']} processes)" in (out / "floor.md").read_text()
