"""benchmarks/light_shape.py: deterministic, read with no rejects, its manifest exact; and
benchmarks/reference.py on it writes the rows the manifest expects."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
from pathlib import Path

import orjson
import pandas as pd
import pytest

from etl.extract.chats import read_batches
from etl.extract.files import discover
from etl.extract.sell import read_sell
from etl.transform.normalize import email_key

ROOT = Path(__file__).resolve().parents[2]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its worker processes find their functions by module name
    spec.loader.exec_module(module)
    return module


light_shape = _module("light_shape")


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"  # it holds the seconds it took
    }


@pytest.fixture(scope="module")
def light(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("light")
    return out, light_shape.generate(out, 3000, 2000, seed=5, workers=1)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path, light):
    out, manifest = light
    again = light_shape.generate(tmp_path / "again", 3000, 2000, seed=5, workers=2)
    other = light_shape.generate(tmp_path / "other", 3000, 2000, seed=6, workers=1)
    assert _tree(out) == _tree(tmp_path / "again")
    assert again["expected_outcomes"] == manifest["expected_outcomes"]
    assert _tree(tmp_path / "other") != _tree(out)
    assert other["expected_outcomes"] != manifest["expected_outcomes"]


def test_layout_is_at_most_16_files_of_about_62500_chats():
    assert light_shape.layout(10) == [(1, 0, 10)]
    assert [c for _n, _f, c in light_shape.layout(130_000)] == [43_333, 43_333, 43_334]
    million = light_shape.layout(1_000_000)
    assert len(million) == 16 and {c for _n, _f, c in million} == {62_500}
    assert len(light_shape.layout(3_000_000)) == 16


def test_files_and_shapes(light):
    out, manifest = light
    assert sorted(p.name for p in (out / "chat").iterdir()) == [
        "agents.json", "chats_01.jsonl", "departments.json"
    ]  # fmt: skip
    assert sorted(p.name for p in (out / "sell").iterdir()) == [
        "contacts.json", "leads.csv", "users.json"
    ]  # fmt: skip
    lines = (out / "chat/chats_01.jsonl").read_bytes().splitlines()
    assert len(lines) == 3000
    chat = orjson.loads(lines[0])
    assert {"id", "type", "visitor", "session", "timestamp", "update_timestamp", "tags",
            "department_name"} <= chat.keys()  # fmt: skip
    assert 1_000 < manifest["chat"]["bytes_per_chat"] < 1_600
    leads_csv = (out / "sell/leads.csv").read_bytes()
    assert leads_csv.startswith("\ufeffId,First Name,Last Name,".encode())
    contacts = orjson.loads((out / "sell/contacts.json").read_bytes())
    assert contacts["meta"]["count"] == len(contacts["items"]) == 1000
    assert contacts["items"][0]["meta"] == {"type": "contact"}


def test_read_with_no_rejects_and_the_mix_is_the_manifest(light):
    out, manifest = light
    batches = list(read_batches(discover(out / "chat"), 100_000))
    assert [r for b in batches for r in b.rejects] == []
    chats = pd.concat([b.chats for b in batches], ignore_index=True)
    assert chats["chat_id"].is_unique and len(chats) == 3000
    sell = read_sell(discover(out / "sell"))
    assert sell.rejects == []
    assert sell.counts()["leads"] == manifest["sell"]["leads"] == 1000
    assert sell.counts()["contacts"] == manifest["sell"]["contacts"] == 1000

    keys, status = email_key(chats["visitor_email"])
    sell_keys = email_key(
        pd.concat([sell.frames["leads"]["email"], sell.frames["contacts"]["email"]])
    )[0].dropna()
    per_email = sell_keys.value_counts()
    matched = keys.isin(set(per_email.index))
    expected = manifest["expected_outcomes"]
    assert matched.sum() == expected["matched"]
    assert (status == "empty").sum() == expected["no_email"]
    assert (status == "invalid").sum() == expected["invalid_email"]
    new = keys[(status == "ok") & ~matched]
    assert new.nunique() == expected["lead_created"]
    assert len(new) - new.nunique() == expected["matched_new_lead"] > 0
    activities = int(keys[matched].map(per_email).sum()) + len(new)
    assert activities == manifest["expected_rows"]["activities"]
    assert (per_email > 1).any()  # a contact shares a lead's email
    raw = chats["visitor_email"]
    assert (matched & (raw != keys)).sum() > 0  # case, spaces, mailto:


def test_reference_writes_the_expected_rows(light, tmp_path, capsys):
    out, manifest = light
    reference = _module("reference")
    db = tmp_path / "reference.db"
    code = reference.main(["--chats", str(out / "chat"), "--sell", str(out / "sell"),
                           "--db", str(db)])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    expected = manifest["expected_outcomes"]
    assert summary["matched_chats"] == expected["matched"]
    assert summary["no_email"] == expected["no_email"]
    assert summary["invalid_email"] == expected["invalid_email"]
    with sqlite3.connect(db) as con:
        activities = con.execute("SELECT count(*) FROM activities").fetchone()[0]
        leads = con.execute("SELECT count(DISTINCT email_normalized) FROM leads").fetchone()[0]
    assert activities == manifest["expected_rows"]["activities"] == summary["activities"]
    assert leads == expected["lead_created"] == summary["leads_created"]
