"""The Sell JSON reader types a page's records column by column (``records_frame``); what it
gives must be what the record-by-record reading it replaced gave: each record copied into a
dict with its file and position, its resource told item by item, and typed by
``tests/sell_oracle.py``. The oracle below is that reading, as it was; any difference in a
value, a dtype, a frame's rows, a reject or its text fails."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sell_oracle import typed_frame

from etl.extract import sell
from etl.extract.files import SourceFile, discover, sell_kind_from_name
from etl.extract.jsondoc import iter_values
from etl.extract.rejects import Reject
from etl.extract.sell import RESOURCES, _kind_by_content, iter_sell_frames
from etl.extract.sellrecords import dump

SAMPLES = Path("/work/shared/samples/sell")


def _oracle(source: SourceFile, frame_rows: int) -> tuple[list, list[Reject]]:
    """(resource, frame) pairs and rejects as the record-by-record reader made them."""
    rejects: list[Reject] = []
    frames = []
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in RESOURCES}
    for item in _oracle_records(source):
        if isinstance(item, Reject):
            rejects.append(item)
            continue
        resource, row = item
        held = rows[resource]
        held.append(row)
        if len(held) >= frame_rows:
            rows[resource] = []
            frames.append((resource, typed_frame(resource, held, rejects)))
    for name in RESOURCES:
        if rows[name]:
            frames.append((name, typed_frame(name, rows.pop(name), rejects)))
    return frames, rejects


def _oracle_records(source: SourceFile):
    name_kind = sell_kind_from_name(source)
    for item in iter_values(source, (name_kind or "records").removesuffix("s")):
        if isinstance(item, Reject):
            yield item
            continue
        position, value = item
        prefix = "" if position == "document" else f"{position} "
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            elements = value["items"]
        elif isinstance(value, list):
            elements = value
        else:
            elements = [value]
        for index, element in enumerate(elements, start=1):
            where = f"{prefix}record {index}" if len(elements) > 1 or not prefix else prefix.strip()
            yield _oracle_typed(source, where, element, name_kind)


def _oracle_typed(source: SourceFile, position: str, element: Any, name_kind: str | None):
    if not isinstance(element, dict):
        return Reject.of(
            source.name, position, "record is not a JSON object", dump(element), "record"
        )
    meta = element.get("meta") if isinstance(element.get("meta"), dict) else {}
    data = element.get("data") if isinstance(element.get("data"), dict) else None
    record = data if data is not None else element
    resource = (
        sell._META_TYPES.get(str(meta.get("type", "")).lower())
        or name_kind
        or _kind_by_content(record)
    )
    if resource is None:
        return Reject.of(
            source.name, position, "cannot tell the Sell resource of this record",
            dump(element), "record",
        )  # fmt: skip
    row = dict(record)
    row["source_file"] = source.name
    row["position"] = position
    return resource, row


def _same(root: Path, monkeypatch, frame_rows: int) -> int:
    """Every JSON file under ``root`` read both ways; the number of frames compared."""
    monkeypatch.setattr(sell, "FRAME_ROWS", frame_rows)
    compared = 0
    for source in discover(root):
        if source.is_csv:
            continue
        expected, expected_rejects = _oracle(source, frame_rows)
        rejects: list[Reject] = []
        got = list(iter_sell_frames([source], rejects))
        assert [r for r, _ in got] == [r for r, _ in expected], source.name
        for (_, frame), (_, want) in zip(got, expected, strict=True):
            pd.testing.assert_frame_equal(frame, want, check_dtype=True)
            compared += 1
        assert rejects == expected_rejects, source.name
    return compared


def _item(kind: str, data: Any) -> dict[str, Any]:
    return {"data": data, "meta": {"type": kind}}


def _odd_files(root: Path) -> None:
    """Files of every shape and value the reader meets, the odd ones most."""
    leads = [
        {"id": 1, "first_name": "Ann", "last_name": "Lee", "email": "a@example.com",
         "status": "New", "tags": ["vip", "b"], "custom_fields": {"z": 1, "a": [1, 2]},
         "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-02-02T00:00:00+00:00Z"},
        {"id": "2", "first_name": "太郎", "last_name": "山田", "source_id": 77, "owner_id": "12.0",
         "tags": [], "custom_fields": {}, "address": {"city": "Tokyo"}, "industry": "Food"},
        {"id": 3.0, "organization_name": "Solo", "first_name": "", "last_name": None,
         "source": "", "source_id": None, "updated_at": 1767225600},
        {"id": True, "first_name": "Bool"},
        {"id": "x9", "creator_id": "bad"},
        {"first_name": "No", "last_name": "Id"},
        {"id": 4, "owner_id": "²", "status": 5},
        {"id": 5, "owner_id": "", "creator_id": None, "name": "  Named  ", "extra": "kept?"},
        {"id": 6, "source_file": "forged.json", "position": "record 99", "hot": True},
        {"id": 1, "first_name": "Ann", "last_name": "Newer", "updated_at": "2026-03-01T00:00:00Z"},
        {"id": 7, "is_organization": "yes", "value": 10.5, "currency": "EUR"},
        {"id": 8, "creator_id": 1.5},
        {"id": -9, "owner_id": "-3", "first_name": "Neg"},
    ]  # fmt: skip
    (root / "leads_page.json").write_text(
        json.dumps({"items": [_item("lead", r) for r in leads], "meta": {"count": len(leads)}})
    )
    contacts = [
        {"id": 10, "is_organization": True, "name": "Acme", "email": "info@acme.example"},
        {"id": 11, "is_organization": 0, "contact_id": 10, "first_name": "Jo"},
        {"id": 12, "is_organization": "no", "contact_id": "10", "organization_name": "Org"},
        {"id": 13, "contact_id": "bad", "first_name": "Bad"},
        {"id": 14, "customer_status": "", "prospect_status": None, "tags": ["x"]},
    ]
    (root / "contacts.json").write_text(json.dumps([_item("contact", c) for c in contacts]))
    users = [
        {"id": 101, "name": "U1", "email": "u1@example.com", "group": {"id": 7, "name": "G"}},
        {"id": 102, "name": "U2", "group_id": 8, "group": None, "group_name": "Own"},
        {"id": 103, "name": "U3", "group_id": 9, "group": {"name": "NoId"}, "group_name": ""},
        {"id": 104, "name": "U4", "group": {"id": "x", "name": "Bad"}},
        {"id": 105, "name": "U5", "group": "text", "roles": ["a"], "timezone": "UTC"},
    ]
    (root / "users.json").write_text(json.dumps({"items": [_item("user", u) for u in users]}))
    mixed = [
        _item("Lead", {"id": 20, "first_name": "Upper"}),  # a meta type not in lower case
        _item("deal", {"id": 30, "name": "D", "value": "10", "hot": False, "stage_id": 3}),
        _item(["lead"], {"id": 21}),  # a type that is no text
        {"data": [1, 2], "meta": {"type": "lead"}},  # data that is no object
        {"data": {"id": 22, "first_name": "NoMeta", "status": "New"}},
        {"meta": {"type": "note"}, "data": {"id": 40, "resource_type": "lead", "content": "c"}},
        ["not", "an", "object"],
        7,
        {"id": 50, "what": "cannot tell"},
        _item("lead_conversion", {"id": 60, "lead_id": 20, "deal_id": 30}),
    ]
    (root / "export.json").write_text(json.dumps({"items": mixed}))
    ndjson = [{"id": 70, "name": "Deal", "value": 1}, {"id": 71, "stage_id": 2}, [1], "x"]
    (root / "deals.jsonl").write_text("\n".join(json.dumps(r) for r in ndjson) + "\nnot json\n")
    (root / "notes.json").write_text(json.dumps({"id": 80, "content": "one record"}))
    (root / "leads_empty.json").write_text(json.dumps({"items": []}))


@pytest.mark.parametrize("frame_rows", [50_000, 3, 1])
def test_odd_json_reads_as_record_by_record(tmp_path, monkeypatch, frame_rows):
    _odd_files(tmp_path)
    assert _same(tmp_path, monkeypatch, frame_rows) >= 8


_VALUES = [None, "", " ", "x", "Ab Cd", "山田", 0, 1, -2, 2.0, 2.5, True, False, "12", "1.0",
           "²", [], ["a"], {}, {"k": "v"}, "2026-01-02T03:04:05Z", "bad date"]  # fmt: skip
_KEYS = {
    "leads": ["owner_id", "creator_id", "first_name", "last_name", "name", "organization_name",
              "status", "source", "source_id", "email", "phone", "tags", "custom_fields",
              "created_at", "updated_at", "odd_key"],
    "contacts": ["owner_id", "is_organization", "contact_id", "name", "first_name", "last_name",
                 "organization_name", "customer_status", "email", "address", "updated_at"],
    "users": ["name", "email", "status", "role", "team_name", "group_id", "group", "group_name",
              "timezone"],
    "deals": ["owner_id", "name", "value", "currency", "stage_id", "contact_id", "hot", "tags"],
}  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_random_records_read_as_record_by_record(tmp_path, monkeypatch, seed):
    """Records of random keys and values (ids mostly good, so most are typed, not rejected)."""
    rng = random.Random(seed)
    for resource, keys in _KEYS.items():
        items = []
        for i in range(200):
            record: dict[str, Any] = {
                "id": rng.choice([i + 1, i + 1, i + 1, str(i + 1), "x", None])
            }
            for key in rng.sample(keys, rng.randint(0, len(keys))):
                value = rng.choice(_VALUES)
                if key == "group" and rng.random() < 0.7:
                    value = {"id": rng.choice([5, "6", "x", None]), "name": rng.choice(_VALUES)}
                record[key] = value
            if resource in ("leads", "contacts"):
                # person_name joins text only (a number for a name fails both ways alike)
                for key in ("first_name", "last_name"):
                    if key in record or rng.random() < 0.5:
                        record[key] = rng.choice([None, "", "Ann", "山田", "Lee"])
            items.append(_item(resource[:-1], record))
        uniform = rng.random() < 0.5  # every record with every key: the reader's quick path
        if uniform:
            every = {k for item in items for k in item["data"]}
            for item in items:
                for key in every - item["data"].keys():
                    item["data"][key] = None
        (tmp_path / f"{resource}.json").write_text(json.dumps({"items": items}))
    assert _same(tmp_path, monkeypatch, rng.choice([50_000, 64])) >= 4


def test_generated_exports_and_samples_read_as_record_by_record(tmp_path, monkeypatch):
    from builders import contact, envelope, lead, user, write_json

    write_json(
        tmp_path / "leads.json", envelope("lead", [lead(i, f"l{i}@x.com") for i in range(50)])
    )
    write_json(
        tmp_path / "contacts.json",
        envelope("contact", [contact(i, f"c{i}@x.com") for i in range(9)]),
    )
    write_json(
        tmp_path / "users.json", envelope("user", [user(100 + i, f"u{i}@x.com") for i in range(3)])
    )
    assert _same(tmp_path, monkeypatch, 50_000) == 3
    if SAMPLES.is_dir():
        assert _same(SAMPLES, monkeypatch, 50_000) >= 1
