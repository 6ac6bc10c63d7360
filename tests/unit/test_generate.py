"""The synthetic export generator: deterministic, in the real shapes, read as intended."""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest

from etl.extract.chats import read_batches
from etl.extract.files import discover
from etl.extract.sell import read_sell
from etl.generate import CSV_HEADER, Plan, generate, plan_blocks
from etl.transform.normalize import email_key

CHAT_ID = re.compile(r"^\d{4}\.10414779\.[0-9A-Za-z]{10}$")
ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ISO_MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
PAGE_NAME = re.compile(r"^chats_(\d{10})_(\d+)\.json\.gz$")
NDJSON_NAME = re.compile(r"^chats_\d+\.jsonl$")


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _load(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _chat_versions(chat_dir: Path) -> list[tuple[str, dict]]:
    """(file name, chat) of every readable chat record, in file-name order."""
    versions = []
    for path in sorted(chat_dir.glob("chats_*")):
        if path.name.endswith(".jsonl"):
            for line in path.read_bytes().splitlines():
                try:
                    versions.append((path.name, orjson.loads(line)))
                except orjson.JSONDecodeError:
                    continue
        else:
            versions.extend((path.name, c) for c in orjson.loads(_load(path))["chats"])
    return versions


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("generated")
    return out, generate(out, 300, 200, seed=7, pages_size=50)


@pytest.fixture(scope="module")
def larger(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("generated_mix")
    return out, generate(out, 3000, 1000, seed=11, pages_size=250)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = generate(tmp_path / "a", 300, 200, seed=3, pages_size=50)
    second = generate(tmp_path / "b", 300, 200, seed=3, pages_size=50)
    generate(tmp_path / "c", 300, 200, seed=4, pages_size=50)
    assert first == second
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    other = _tree(tmp_path / "c")
    assert other.keys() != _tree(tmp_path / "a").keys() or other != _tree(tmp_path / "a")


def test_worker_processes_write_the_same_bytes(tmp_path):
    generate(tmp_path / "one", 120, 60, seed=5, pages_size=20, sell_page_size=25, workers=1)
    generate(tmp_path / "two", 120, 60, seed=5, pages_size=20, sell_page_size=25, workers=2)
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")


def test_files_are_named_as_the_apis_write_them(small):
    out, manifest = small
    chat_names = sorted(p.name for p in (out / "chat").iterdir())
    sell_names = sorted(p.name for p in (out / "sell").iterdir())
    assert "agents.json" in chat_names and "departments.json" in chat_names
    pages = [n for n in chat_names if PAGE_NAME.match(n)]
    ndjson = [n for n in chat_names if NDJSON_NAME.match(n)]
    assert len(pages) == manifest["chat"]["pages"] >= 5
    assert len(ndjson) == manifest["chat"]["ndjson_files"] >= 1
    assert len(chat_names) == len(pages) + len(ndjson) + 2
    assert sell_names == [
        "contacts_1.json.gz", "contacts_export.csv", "deals_1.json.gz", "leads_1.json.gz",
        "users.json",
    ]  # fmt: skip
    listed = {name for name in manifest["files"]}
    assert listed == {f"chat/{n}" for n in chat_names} | {f"sell/{n}" for n in sell_names}
    assert (out / "manifest.json").is_file()
    # page names sort in time order: the end_time in the name grows with the page number
    numbers = [int(PAGE_NAME.match(n).group(2)) for n in pages]
    assert numbers == sorted(numbers)


def test_chat_pages_and_lines_have_the_chat_api_shape(small):
    out, manifest = small
    for path in sorted((out / "chat").glob("chats_*.json.gz")):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        page = orjson.loads(gzip.decompress(path.read_bytes()))
        assert list(page) == ["chats", "count", "end_id", "end_time", "next_page"]
        assert page["count"] == len(page["chats"]) == manifest["files"][f"chat/{path.name}"]
        assert page["end_id"] == page["chats"][-1]["id"]
        assert path.name.startswith(f"chats_{page['end_time']}_")
        latest = max(_epoch(c["update_timestamp"]) for c in page["chats"])
        assert page["end_time"] == latest
        assert f"start_id={page['end_id']}" in page["next_page"]
    kinds = Counter()
    for _name, chat in _chat_versions(out / "chat"):
        kinds[chat["type"]] += 1
        assert CHAT_ID.match(chat["id"])
        assert set(chat["visitor"]) == {"id", "name", "email", "phone", "notes"}
        assert all(isinstance(v, str) for v in chat["visitor"].values())
        assert ISO_SECONDS.match(chat["timestamp"]) and ISO_SECONDS.match(chat["update_timestamp"])
        assert chat["session"]["country_code"] and chat["session"]["city"]
        if chat["type"] == "offline_msg":
            assert chat["message"] and "history" not in chat
            continue
        assert ISO_SECONDS.match(chat["end_timestamp"])
        assert chat["timestamp"] <= chat["end_timestamp"] <= chat["update_timestamp"]
        assert all(isinstance(a, str) for a in chat["agent_ids"])
        assert len(chat["agent_ids"]) == len(chat["agent_names"])
        history = chat["history"]
        assert all(ISO_MICROS.match(e["timestamp"]) for e in history)
        assert [e["timestamp"] for e in history] == sorted(e["timestamp"] for e in history)
        assert history[0]["type"] == "chat.memberjoin"
        # a newer version may end with the chat.tag event that tagged it for sales
        assert [e for e in history if e["type"] != "chat.tag"][-1]["type"] == "chat.memberleave"
        messages = [e for e in history if e["type"] == "chat.msg"]
        if chat["missed"]:
            assert chat["agent_ids"] == [] and 1 <= len(messages) <= 2
        else:
            assert 3 <= len(messages) <= 12 and chat["agent_ids"]
            assert chat["count"]["total"] == len(messages)
    assert kinds["offline_msg"] > 0 and kinds["chat"] > kinds["offline_msg"]


def test_reference_files_and_sell_pages_have_the_api_shapes(small):
    out, manifest = small
    agents = orjson.loads((out / "chat/agents.json").read_bytes())
    assert all(isinstance(a["id"], int) and "@" in a["email"] for a in agents)
    assert {"id", "email", "display_name", "enabled", "departments"} <= set(agents[0])
    departments = orjson.loads((out / "chat/departments.json").read_bytes())
    assert {d["name"] for d in departments} >= {"Sales JP", "Sales EN", "Support"}
    users = [i["data"] for i in orjson.loads((out / "sell/users.json").read_bytes())["items"]]
    assert len(users) == 20
    assert sum(u["status"] == "inactive" for u in users) == 2
    assert all(u["team_name"] for u in users)
    assert sum(isinstance(u["group"], dict) for u in users) >= 18
    user_emails = {u["email"].lower() for u in users}
    assert sum(a["email"].lower() in user_emails for a in agents) >= 3
    assert any(
        a["email"] != a["email"].lower() and a["email"].lower() in user_emails for a in agents
    )
    for resource, kind in (("leads", "lead"), ("contacts", "contact"), ("deals", "deal")):
        page = orjson.loads(gzip.decompress((out / f"sell/{resource}_1.json.gz").read_bytes()))
        assert page["meta"]["type"] == "collection"
        assert page["meta"]["count"] == len(page["items"]) == manifest["sell"][resource]
        assert all(item["meta"] == {"type": kind} for item in page["items"])
    contacts = orjson.loads(gzip.decompress((out / "sell/contacts_1.json.gz").read_bytes()))
    by_id = {i["data"]["id"]: i["data"] for i in contacts["items"]}
    people = [c for c in by_id.values() if not c["is_organization"]]
    assert people and all(by_id[p["contact_id"]]["is_organization"] for p in people)
    deals = orjson.loads(gzip.decompress((out / "sell/deals_1.json.gz").read_bytes()))
    assert all(d["data"]["contact_id"] in by_id for d in deals["items"])


def test_smart_list_csv_is_utf8_with_bom_and_the_ui_labels(small):
    out, manifest = small
    data = (out / "sell/contacts_export.csv").read_bytes()
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == CSV_HEADER
    assert ",".join(rows[0]) == (
        "Id,First Name,Last Name,Company Name,Email,Phone,Mobile,Owner,Status,Source,Tags,"
        "Is Organization"
    )
    assert len(rows) - 1 == manifest["sell"]["csv_contacts"] > 0
    assert {r[-1] for r in rows[1:]} == {"true", "false"}


def test_readers_reject_only_the_cut_lines(small):
    out, manifest = small
    batches = list(read_batches(discover(out / "chat"), 10_000))
    chats = pd.concat([b.chats for b in batches], ignore_index=True)
    rejects = [r for b in batches for r in b.rejects]
    assert manifest["chat"]["malformed_lines"] >= 1
    assert len(rejects) == manifest["chat"]["malformed_lines"]
    assert all(r.source_file.endswith(".jsonl") and "invalid JSON" in r.reason for r in rejects)
    assert len(chats) == manifest["chat"]["records"] - manifest["chat"]["malformed_lines"]
    assert chats["chat_id"].nunique() == manifest["chat"]["readable_chats"]
    assert sum(len(b.agents) for b in batches) == manifest["chat"]["agents"]
    assert sum(len(b.departments) for b in batches) == manifest["chat"]["departments"]

    sell = read_sell(discover(out / "sell"))
    assert sell.rejects == []
    counts = sell.counts()
    for resource in ("leads", "contacts", "deals", "users"):
        assert counts[resource] == manifest["sell"][resource]
    only_csv = read_sell(discover(out / "sell/contacts_export.csv"))
    assert only_csv.rejects == []
    assert len(only_csv.frames["contacts"]) == manifest["sell"]["csv_contacts"]


def test_mix_is_roughly_as_intended(larger):
    out, manifest = larger
    versions = _chat_versions(out / "chat")
    first = {}
    for name, chat in versions:
        first.setdefault(chat["id"], (name, chat))
    chats = [c for _n, c in first.values()]
    total = len(chats)
    assert total == manifest["chat"]["readable_chats"]
    assert 0.07 < sum(c["type"] == "offline_msg" for c in chats) / total < 0.13

    keys, status = email_key(pd.Series([c["visitor"]["email"] for c in chats]))
    assert (status == "empty").sum() == manifest["chat"]["emails"]["no_email"]
    assert (status == "invalid").sum() == manifest["chat"]["emails"]["invalid_email"]
    assert 0.16 < (status == "empty").mean() < 0.24
    assert 0.01 < (status == "invalid").mean() < 0.04

    sell = read_sell(discover(out / "sell"))
    sell_emails = set(
        email_key(pd.concat([sell.frames["leads"]["email"], sell.frames["contacts"]["email"]]))[0]
        .dropna()
        .tolist()
    )
    matched = keys.isin(sell_emails)
    emails = manifest["chat"]["emails"]
    assert matched.sum() == sum(v for k, v in emails.items() if k.startswith("sell_match"))
    assert 0.5 < matched.mean() < 0.6
    raw = pd.Series([c["visitor"]["email"] for c in chats])
    noisy = matched & (raw != keys)
    assert noisy.sum() >= emails["sell_match_case_space"] > 0
    assert raw.str.startswith("mailto:").sum() == emails["sell_match_mailto"] > 0
    assert raw.map(lambda e: any(ord(ch) > 0xFF00 for ch in e)).sum() >= 1
    new_visitors = keys[(status == "ok") & ~matched]
    assert len(new_visitors) == emails["new_visitor"]
    assert new_visitors.nunique() == manifest["chat"]["new_visitor_emails"]
    per_email = keys.dropna().value_counts()
    assert (per_email >= 2).sum() > 50  # repeat visitors

    names = [c["visitor"]["name"] for c in chats]
    assert sum(bool(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", n)) for n in names) > 100
    assert sum(bool(c["visitor"]["notes"]) for c in chats) == manifest["chat"]["with_notes"] > 0
    assert sum("notify_sales" in c["tags"] for c in chats) == manifest["chat"]["notify_sales"] > 0


def test_updated_chats_come_again_later_and_newer(larger):
    out, manifest = larger
    seen: dict[str, list[tuple[str, dict]]] = {}
    for name, chat in _chat_versions(out / "chat"):
        seen.setdefault(chat["id"], []).append((name, chat))
    again = {k: v for k, v in seen.items() if len(v) > 1}
    assert len(again) == manifest["chat"]["updated"]
    assert 0.003 < len(again) / len(seen) < 0.02
    for versions in again.values():
        (old_file, old), (new_file, new) = versions
        assert new_file > old_file and PAGE_NAME.match(new_file)
        assert new["update_timestamp"] > old["update_timestamp"]
        assert set(new["tags"]) - set(old["tags"]) & {"notify_sales", "follow_up"}


def test_layout_cuts_and_updates_at_about_the_intended_rates():
    blocks = plan_blocks(Plan.make(2, 200_000, 0, True), 1000)
    ndjson = [b for b in blocks if b.ndjson]
    lines = sum(b.count for b in ndjson)
    assert 19 <= len(ndjson) <= 22 and lines == 1000 * len(ndjson)  # one file in ten
    cut = sum(len(b.malformed) for b in ndjson)
    assert 5 <= cut <= 45  # 0.1% of ~20,000 lines, plus the one the first file always holds
    updates = [i for b in blocks for i in b.updates]
    assert len(updates) == len(set(updates))
    assert 1500 < len(updates) < 2500
    first_block = {i: b.number for b in blocks for i in range(b.first, b.first + b.count)}
    for block in blocks:
        assert not (block.ndjson and block.updates)
        assert all(first_block[i] < block.number for i in block.updates)
    assert sum(b.count for b in blocks) == 200_000


def test_refuses_a_used_directory_unless_told_to_overwrite(tmp_path):
    generate(tmp_path, 200, 50, seed=1, pages_size=20)
    with pytest.raises(FileExistsError):
        generate(tmp_path, 100, 50, seed=1)
    (tmp_path / "chat" / "notes.txt").write_text("mine")
    manifest = generate(tmp_path, 100, 50, seed=1, overwrite=True)
    left = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert left == set(manifest["files"]) | {"manifest.json", "chat/notes.txt"}


def test_empty_sizes_still_write_the_reference_files(tmp_path):
    manifest = generate(tmp_path, 0, 0, seed=1)
    assert manifest["chat"]["chats"] == 0 and manifest["sell"]["leads"] == 0
    assert set(manifest["files"]) == {
        "chat/agents.json",
        "chat/departments.json",
        "sell/users.json",
    }
    assert read_sell(discover(tmp_path / "sell")).rejects == []


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
