import gzip
import json

import pandas as pd
import pytest

from etl.extract.chats import read_batches
from etl.extract.files import discover

from builders import chat, page, write_json, write_ndjson


def _read(path, batch_size=1000):
    batches = list(read_batches(discover(path), batch_size))
    chats = pd.concat([b.chats for b in batches], ignore_index=True)
    agents = pd.concat([b.agents for b in batches], ignore_index=True)
    departments = pd.concat([b.departments for b in batches], ignore_index=True)
    rejects = [r for b in batches for r in b.rejects]
    return chats, agents, departments, rejects


def test_incremental_page(tmp_path):
    write_json(tmp_path / "chats_1.json", page([chat("c1", "a@example.com"), chat("c2")]))
    chats, _, _, rejects = _read(tmp_path)
    assert chats["chat_id"].tolist() == ["c1", "c2"]
    assert rejects == []


def test_bulk_docs_map_takes_id_from_key(tmp_path):
    one = chat("ignored", "a@example.com")
    del one["id"]
    write_json(tmp_path / "export.json", {"docs": {"c9": one}})
    chats, _, _, rejects = _read(tmp_path)
    assert chats["chat_id"].tolist() == ["c9"]
    assert rejects == []


def test_array_ndjson_single_and_gzip(tmp_path):
    write_json(tmp_path / "a.json", [chat("c1"), chat("c2")])
    write_ndjson(tmp_path / "b.jsonl", [chat("c3"), chat("c4")])
    write_json(tmp_path / "c.json", chat("c5"))
    write_json(tmp_path / "d.json.gz", page([chat("c6")]), gz=True)
    (tmp_path / "e.ndjson.gz").write_bytes(
        gzip.compress(b"\n".join(json.dumps(chat(f"c{i}")).encode() for i in (7, 8)))
    )
    chats, _, _, rejects = _read(tmp_path)
    assert sorted(chats["chat_id"]) == [f"c{i}" for i in range(1, 9)]
    assert rejects == []


def test_ndjson_without_suffix_is_told_by_content(tmp_path):
    write_ndjson(tmp_path / "export.json", [chat("c1"), chat("c2")])
    chats, _, _, rejects = _read(tmp_path)
    assert chats["chat_id"].tolist() == ["c1", "c2"]
    assert rejects == []


def test_truncated_ndjson_line_loses_only_that_line(tmp_path):
    good = [chat(f"c{i}") for i in range(5)]
    cut = json.dumps(chat("c-cut"))[:80]
    path = tmp_path / "chats.jsonl"
    lines = [json.dumps(c) for c in good[:2]] + [cut] + [json.dumps(c) for c in good[2:]]
    path.write_text("\n".join(lines) + "\n")
    chats, _, _, rejects = _read(tmp_path)
    assert sorted(chats["chat_id"]) == [f"c{i}" for i in range(5)]
    assert len(rejects) == 1
    assert rejects[0].position == "line 3"
    assert rejects[0].source_file.endswith("chats.jsonl")
    assert "invalid JSON" in rejects[0].reason
    assert rejects[0].raw == cut


def test_truncated_document_keeps_records_before_the_cut(tmp_path):
    text = json.dumps(page([chat("c1"), chat("c2"), chat("c3")]), indent=2)
    cut_at = text.index('"c3"') + 10
    (tmp_path / "chats_cut.json").write_text(text[:cut_at])
    chats, _, _, rejects = _read(tmp_path)
    assert chats["chat_id"].tolist() == ["c1", "c2"]
    assert len(rejects) == 1
    assert rejects[0].position.startswith("byte ")
    assert "after record 2" in rejects[0].reason


def test_raw_text_is_truncated_to_2kb(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text('{"id": "x", "visitor": "' + "y" * 10_000 + "\n")
    _, _, _, rejects = _read(tmp_path)
    assert len(rejects) == 1
    assert len(rejects[0].raw) == 2048


def test_records_without_id_or_timestamp_are_rejects(tmp_path):
    no_id = chat("x")
    del no_id["id"]
    bad_time = chat("c2", start="yesterday")
    write_json(tmp_path / "chats.json", [no_id, chat("c1"), bad_time, "not an object"])
    chats, _, _, rejects = _read(tmp_path)
    assert chats["chat_id"].tolist() == ["c1"]
    reasons = sorted((r.position, r.reason.split(":")[0]) for r in rejects)
    assert reasons == [
        ("record 1", "chat has no id"),
        ("record 3", "chat timestamp missing or not ISO-8601"),
        ("record 4", "record is not a JSON object"),
    ]
    assert [r.chat_id for r in rejects if r.position == "record 3"] == ["c2"]


def test_timestamps_whole_fractional_and_plus_zero_z(tmp_path):
    write_json(
        tmp_path / "chats.json",
        [
            chat("c1", start="2026-11-02T09:00:00Z"),
            chat("c2", start="2026-11-02T09:00:00.250000Z"),
            chat("c3", start="2026-11-02T09:00:00+00:00Z"),
        ],
    )
    chats, _, _, rejects = _read(tmp_path)
    assert rejects == []
    assert chats["started_at"].dt.strftime("%H:%M:%S.%f").tolist() == [
        "09:00:00.000000",
        "09:00:00.250000",
        "09:00:00.000000",
    ]


def test_version_falls_back_to_end_then_start(tmp_path):
    without = chat("c1", end=None)
    write_json(tmp_path / "chats.json", [without, chat("c2", updated="2026-11-03T00:00:00Z")])
    chats, _, _, _ = _read(tmp_path)
    assert chats["version"].str[:19].tolist() == ["2026-11-02T09:00:00", "2026-11-03T00:00:00"]


def test_transcript_one_line_per_message(tmp_path):
    one = chat("c1", name="Emily", messages=[("Emily", "Hi\nthere"), ("Aiko", "Hello Emily")])
    offline = chat("c2", kind="offline_msg", name="Ken", messages=[("Ken", "Call me")])
    write_json(tmp_path / "chats.json", [one, offline])
    chats, _, _, _ = _read(tmp_path)
    first, second = chats["transcript"].tolist()
    assert first.splitlines() == [
        "2026-11-02 09:00:10 Emily: Hi ⏎ there",
        "2026-11-02 09:00:11 Aiko: Hello Emily",
    ]
    assert second == "2026-11-02 09:00:00 Ken: Call me"
    assert chats["message_count"].tolist() == [2, 1]
    assert chats["kind"].tolist() == ["chat", "offline_msg"]


def test_agents_and_departments_by_name_and_by_content(tmp_path):
    agent = {
        "id": 4120927,
        "email": "Aiko@Example.com",
        "display_name": "Aiko",
        "enabled": True,
        "departments": [],
    }
    department = {"id": 1817719521, "name": "Sales JP", "members": [4120927]}
    write_json(tmp_path / "agents.json", [agent])
    write_json(tmp_path / "departments.json", [department])
    write_json(tmp_path / "misc_export.json", [chat("c1"), {**agent, "id": 5}])
    chats, agents, departments, rejects = _read(tmp_path)
    assert rejects == []
    assert chats["chat_id"].tolist() == ["c1"]
    assert sorted(agents["agent_id"]) == ["4120927", "5"]
    assert departments.to_dict("records") == [
        {"department_id": "1817719521", "name": "Sales JP", "members": '["4120927"]'}
    ]


def test_batches_are_bounded(tmp_path):
    write_ndjson(tmp_path / "chats.jsonl", [chat(f"c{i}") for i in range(25)])
    sizes = [len(b.chats) for b in read_batches(discover(tmp_path), 10)]
    assert sizes == [10, 10, 5]


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_file_is_nothing(tmp_path, content):
    (tmp_path / "chats.json").write_bytes(content)
    assert list(read_batches(discover(tmp_path), 10)) == []


def test_not_gzip_despite_name_and_garbage(tmp_path):
    (tmp_path / "chats.json.gz").write_bytes(b"\x1f\x8bgarbage")
    _, _, _, rejects = _read(tmp_path)
    assert len(rejects) == 1 and rejects[0].position == "file"


def test_a_chat_deleted_at_source_is_read_without_its_content(tmp_path):
    """SPEC 10: what is staged of a deleted chat is its id, times, version and the fact of
    deletion; nothing the visitor or an agent wrote, no name, no contact detail."""
    kept = chat("c1", "a@example.com", name="Ann Archer", phone="+1 555 0100", notes="vip",
                tags=["sales"], rating="good", updated="2026-11-02T09:20:00Z")  # fmt: skip
    gone = dict(kept, id="c2", deleted=True, comment="thanks")
    write_json(tmp_path / "chats.json", page([kept, gone]))
    chats, _, _, rejects = _read(tmp_path)
    assert rejects == []
    one, two = (row for _, row in chats.set_index("chat_id").iterrows())
    assert chats["deleted"].tolist() == [False, True]
    assert one["visitor_name"] == "Ann Archer" and "Hello!" in one["transcript"]
    for column in ("visitor_id", "visitor_name", "visitor_email", "visitor_phone",
                   "visitor_notes", "rating", "comment", "country_code", "transcript"):  # fmt: skip
        assert two[column] == "", column
    assert (two["tags"], two["agent_ids"], two["agent_names"]) == ("[]", "[]", "[]")
    assert pd.isna(two["content_hash"])
    # the version still tells the versions apart (update time, then the record's hash)
    assert two["version"].startswith("2026-11-02T09:20:00") and two["version"] != one["version"]
    assert (two["started_at"], two["kind"], two["message_count"]) == (
        one["started_at"], one["kind"], one["message_count"],
    )  # fmt: skip


def test_a_byte_order_mark_costs_no_record(tmp_path):
    """Windows tools write UTF-8 with a BOM before the first line or document."""
    bom = b"\xef\xbb\xbf"
    lines = "\n".join(json.dumps(chat(f"n{i}", f"p{i}@example.com")) for i in range(3))
    (tmp_path / "chats.ndjson").write_bytes(bom + lines.encode() + b"\n")
    (tmp_path / "unnamed.txt.json").write_bytes(bom + lines.encode())  # NDJSON by content
    (tmp_path / "page.json").write_bytes(bom + json.dumps(page([chat("j1")])).encode())
    (tmp_path / "page2.json.gz").write_bytes(
        gzip.compress(bom + json.dumps(page([chat("j2")])).encode())
    )
    chats, _, _, rejects = _read(tmp_path)
    assert rejects == []
    assert sorted(chats["chat_id"]) == ["j1", "j2", "n0", "n0", "n1", "n1", "n2", "n2"]


def test_types_that_drift_between_files_and_records_all_load(tmp_path):
    """What real exports do from file to file, and a reader must take as it comes: a rating
    as a number here and text there, a list where a string was, new nested fields, history
    entry types it has never seen, nulls for every absent value."""
    a = chat("a1", "a@example.com", rating="good", messages=[("V", "hi")])
    b = chat("b1", "b@example.com", messages=[("V", "hello")])
    b["rating"] = 5
    b["tags"] = "vip"  # a string, not a list
    b["session"]["new_nested"] = {"deep": [1, {"x": None}]}
    b["visitor"]["phone"] = 4155550100  # a number
    b["history"].append({"type": "chat.rating", "new_rating": "good", "timestamp": 1})
    b["history"].append({"type": "chat.some_new_kind", "payload": {"any": ["thing"]}})
    b["history"].append({"type": "chat.msg", "name": "V", "msg": 42, "timestamp": None})
    c = chat("c1")
    c["visitor"] = {"id": None, "name": None, "email": None, "phone": None, "notes": None}
    c["agent_names"] = None
    c["department_id"] = 17  # a number where chats elsewhere have text
    write_ndjson(tmp_path / "one.ndjson", [a])
    write_ndjson(tmp_path / "two.ndjson", [b, c])
    chats, _, _, rejects = _read(tmp_path)
    assert rejects == []
    by_id = chats.set_index("chat_id")
    assert by_id.at["a1", "rating"] == "good" and by_id.at["b1", "rating"] == "5"
    assert by_id.at["b1", "visitor_phone"] == "4155550100"
    assert by_id.at["b1", "message_count"] == 2  # the two messages; a rating is no message
    assert by_id.at["b1", "transcript"].endswith("V: 42")
    assert by_id.at["c1", "visitor_email"] == "" and by_id.at["c1", "department_id"] == "17"


@pytest.mark.parametrize("shape", ["page", "array", "docs"])
def test_a_large_document_is_read_chat_by_chat_as_a_small_one(tmp_path, monkeypatch, shape):
    from etl.extract import jsondoc

    chats = [chat(f"c{i}", f"p{i}@example.com") for i in range(40)]
    document = {
        "page": page(chats),
        "array": chats,
        "docs": {"docs": {c["id"]: {k: v for k, v in c.items() if k != "id"} for c in chats}},
    }[shape]
    small, large = tmp_path / "small", tmp_path / "large"
    write_json(small / "export.json", document)
    write_json(large / "export.json", document)
    expected, _, _, expected_rejects = _read(small)
    monkeypatch.setattr(jsondoc, "STREAM_BYTES", 2048)
    got, _, _, rejects = _read(large)
    assert rejects == expected_rejects == []
    pd.testing.assert_frame_equal(
        got.drop(columns=["source_file"]), expected.drop(columns=["source_file"])
    )
    assert got["position"].tolist() == [f"record {i}" for i in range(1, 41)]
