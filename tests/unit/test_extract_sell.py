import gzip
import json

import pandas as pd
import pytest

from etl.extract.files import discover
from etl.extract.sell import read_sell

from builders import contact, envelope, lead, user, write_json, write_ndjson


def test_envelopes_with_item_meta_and_top_level_collection(tmp_path):
    write_json(tmp_path / "export1.json", envelope("lead", [lead(1, "a@example.com")]))
    flat = {
        "items": [{"data": contact(7, "c@example.com")}],
        "type": "collection",
        "count": 1,
        "links": {},
    }
    write_json(tmp_path / "contacts_page.json", flat)
    result = read_sell(discover(tmp_path))
    assert result.rejects == []
    assert result.frames["leads"]["id"].tolist() == [1]
    assert result.frames["contacts"]["id"].tolist() == [7]


def test_arrays_and_ndjson_of_plain_records(tmp_path):
    write_json(tmp_path / "users.json", [user(101, "u@example.com")])
    write_ndjson(
        tmp_path / "deals.jsonl", [{"id": 5, "name": "Big", "contact_id": 7, "value": "10"}]
    )
    result = read_sell(discover(tmp_path))
    assert result.frames["users"]["id"].tolist() == [101]
    assert result.frames["deals"]["contact_id"].tolist() == [7]


def test_resource_by_content_when_name_says_nothing(tmp_path):
    write_json(tmp_path / "export.json", [{"id": 3, "is_organization": True, "name": "Acme"}])
    result = read_sell(discover(tmp_path))
    assert result.frames["contacts"]["is_organization"].tolist() == [True]


def test_same_id_twice_keeps_newest(tmp_path):
    write_json(
        tmp_path / "leads_a.json",
        envelope("lead", [lead(1, "new@example.com", updated_at="2026-10-05T00:00:00Z")]),
    )
    write_json(
        tmp_path / "leads_b.json",
        envelope("lead", [lead(1, "old@example.com", updated_at="2026-10-01T00:00:00Z")]),
    )
    result = read_sell(discover(tmp_path))
    assert result.frames["leads"]["email"].tolist() == ["new@example.com"]


def test_bad_ids_are_rejects(tmp_path):
    write_json(
        tmp_path / "leads.json",
        envelope(
            "lead",
            [
                lead(1, "a@example.com"),
                {"first_name": "No", "status": "New"},
                {**lead(2, None), "owner_id": "bob"},
            ],
        ),
    )
    result = read_sell(discover(tmp_path))
    assert result.frames["leads"]["id"].tolist() == [1]
    assert sorted(r.reason for r in result.rejects) == [
        "owner_id is not an integer: 'bob'",
        "record has no id",
    ]


CSV_HEADER = "Id,First Name,Last Name,Company Name,Email,Phone,Mobile,Owner,Status,Source,Tags,Is Organization,Favourite Colour\n"


def test_csv_default_labels_bom_and_custom_fields(tmp_path):
    body = (
        CSV_HEADER
        + '12,Emily,Clarke,Acme,emily@example.com,+1 415 555 0100,,owner@example.com,New,Web,"vip, chat",0,blue\n'
    )
    (tmp_path / "contacts_export.csv").write_bytes(b"\xef\xbb\xbf" + body.encode())
    result = read_sell(discover(tmp_path))
    assert result.rejects == []
    row = result.frames["contacts"].iloc[0]
    assert (row["id"], row["first_name"], row["email"], row["owner_ref"]) == (
        12,
        "Emily",
        "emily@example.com",
        "owner@example.com",
    )
    assert row["tags"] == '["vip","chat"]'
    assert row["custom_fields"] == '{"Favourite Colour":"blue"}'
    assert row["is_organization"] is False or row["is_organization"] == False  # noqa: E712


def test_csv_cp932_from_japanese_excel(tmp_path):
    body = (
        CSV_HEADER
        + "13,太郎,山田,株式会社例,taro@example.jp,03-1234-5678,,105,新規,チャット,,0,赤\n"
    )
    (tmp_path / "leads_jp.csv").write_bytes(body.encode("cp932"))
    result = read_sell(discover(tmp_path))
    row = result.frames["leads"].iloc[0]
    assert (row["last_name"], row["organization_name"], row["owner_id"]) == (
        "山田",
        "株式会社例",
        105,
    )


def test_csv_configured_labels_and_explicit_encoding(tmp_path):
    body = "ID,姓,名,メール\n14,山田,花子,hanako@example.jp\n"
    (tmp_path / "leads.csv").write_bytes(body.encode("cp932"))
    labels = {"ID": "id", "姓": "last_name", "名": "first_name", "メール": "email"}
    result = read_sell(discover(tmp_path), labels, encoding="cp932")
    assert result.frames["leads"][["id", "email"]].values.tolist() == [[14, "hanako@example.jp"]]


def test_csv_short_row_is_a_reject_with_line(tmp_path):
    body = CSV_HEADER + "15,A,B,C,a@example.com\n" + "16,Ann,Lee,Co,ann@example.com,,,,New,,,0,\n"
    (tmp_path / "leads.csv").write_text(body)
    result = read_sell(discover(tmp_path))
    assert result.frames["leads"]["id"].tolist() == [16]
    assert [(r.position, r.reason) for r in result.rejects] == [
        ("line 2", "5 fields where the header has 13")
    ]


@pytest.mark.parametrize(
    ("value", "expected"), [("company", True), ("person", False), ("1", True), ("false", False)]
)
def test_csv_type_column(tmp_path, value, expected):
    (tmp_path / "contacts.csv").write_text(f"Id,Name,Type\n1,Acme,{value}\n")
    result = read_sell(discover(tmp_path))
    assert bool(result.frames["contacts"]["is_organization"].iloc[0]) is expected


def test_csv_of_unknown_resource_is_a_file_reject(tmp_path):
    (tmp_path / "export.csv").write_text("Id,Name\n1,Acme\n")
    result = read_sell(discover(tmp_path))
    assert [r.position for r in result.rejects] == ["line 1"]


def test_a_json_page_with_a_byte_order_mark(tmp_path):
    data = json.dumps(envelope("lead", [lead(1, "a@example.com")])).encode()
    (tmp_path / "leads.json").write_bytes(b"\xef\xbb\xbf" + data)
    result = read_sell(discover(tmp_path))
    assert result.rejects == []
    assert result.frames["leads"]["id"].tolist() == [1]


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("pretty", [False, True])
def test_a_large_envelope_is_read_record_by_record_as_a_small_one(
    tmp_path, monkeypatch, gzipped, pretty
):
    """Over STREAM_BYTES a document is streamed, never held whole; what it gives is the same."""
    from etl.extract import jsondoc

    records = [contact(i, f"c{i}@example.com", name=f"C {i}") for i in range(1, 301)]
    records[5]["custom_fields"] = {"score": 1.5, "tier": None}
    document = envelope("contact", records)
    text = json.dumps(document, indent=1 if pretty else None).encode()
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    (small / "contacts.json").write_bytes(text)
    data = b"\xef\xbb\xbf" + text  # with a BOM too
    (large / "contacts.json").write_bytes(gzip.compress(data) if gzipped else data)
    expected = read_sell(discover(small))
    monkeypatch.setattr(jsondoc, "STREAM_BYTES", 1024)
    real, sizes = jsondoc.orjson.loads, []
    monkeypatch.setattr(jsondoc.orjson, "loads", lambda data: sizes.append(len(data)) or real(data))
    got = read_sell(discover(large))
    assert max(sizes, default=0) < 1024  # never parsed whole (a first line, at most)
    assert got.rejects == expected.rejects == []
    pd.testing.assert_frame_equal(
        got.frames["contacts"].drop(columns=["source_file"]),
        expected.frames["contacts"].drop(columns=["source_file"]),
    )


def test_a_large_document_cut_short_keeps_the_records_before_the_cut(tmp_path, monkeypatch):
    from etl.extract import jsondoc

    records = [lead(i, f"l{i}@example.com") for i in range(1, 51)]
    text = json.dumps(envelope("lead", records)).encode()
    (tmp_path / "leads.json").write_bytes(text[: len(text) // 2])
    monkeypatch.setattr(jsondoc, "STREAM_BYTES", 1024)
    got = read_sell(discover(tmp_path))
    kept = len(got.frames["leads"])
    assert 10 < kept < 50
    [reject] = got.rejects
    assert reject.position == f"record {kept + 1}"
    assert reject.reason.startswith(f"invalid JSON after record {kept} (file cut short?)")
