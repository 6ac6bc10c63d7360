"""The chat reader, rewritten for speed, gives what the reader it replaced gave: the same
batches, frames (values and dtypes) and rejects (file, position, reason, raw, chat id) on the
project's examples, the shared samples, generated exports and a corpus of the drift real
exports show. ``_reference_batches`` is that earlier reader, kept here verbatim as the oracle."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.errors import OutOfBoundsDatetime

from etl.extract.chats import (
    ChatBatch,
    RawRecord,
    _plain_start,
    agent_frame,
    department_frame,
    empty_chat_frame,
    iter_records,
    read_batches,
)
from etl.extract.files import discover
from etl.extract.rejects import Reject
from etl.extract.timestamps import parse_utc
from etl.generate import generate
from etl.vocab import CHAT_COLUMNS, CHAT_KINDS, without_content

from builders import chat, page, write_json, write_ndjson

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "samples"


# -- the reader as it was (chatsell 42285f9), the oracle -----------------------------------


def _reference_batches(files, batch_size):
    pending, rejects = [], []
    for source in files:
        for item in iter_records(source):
            if isinstance(item, Reject):
                rejects.append(item)
            else:
                pending.append(item)
            if len(pending) >= batch_size:
                yield _ref_build_batch(pending, rejects)
                pending, rejects = [], []
    if pending or rejects:
        yield _ref_build_batch(pending, rejects)


def _ref_build_batch(records: list[RawRecord], rejects: list[Reject]) -> ChatBatch:
    rejects = list(rejects)
    chats = [r for r in records if r.kind == "chats"]
    agents = [r for r in records if r.kind == "agents"]
    departments = [r for r in records if r.kind == "departments"]
    return ChatBatch(
        chats=_ref_chat_frame(chats, rejects),
        agents=agent_frame(agents, rejects),
        departments=department_frame(departments, rejects),
        rejects=rejects,
    )


def _ref_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return _ref_dump(value)


def _ref_dump(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def _ref_string_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [_ref_text(v) for v in value if v is not None]
    return [_ref_text(value)]


def _ref_json_list(value: Any) -> str:
    if not value:
        return "[]"
    if type(value) is list and all(type(v) is str for v in value):
        return orjson.dumps(value).decode()
    return _ref_dump(_ref_string_list(value))


_REF_ROW_COLUMNS = tuple(
    c for c in CHAT_COLUMNS if c not in ("started_at", "ended_at", "updated_at", "version")
)
_REF_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _ref_parse_utc(values) -> pd.Series:
    series = pd.Series(values, dtype="object")
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        parsed = pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")
        retry = parsed.isna() & series.notna()
        if retry.any():
            parsed = parsed.where(~retry, _ref_parse_mixed(series[retry]))
        return parsed.astype("datetime64[us, UTC]")
    return _ref_parse_mixed(series).astype("datetime64[us, UTC]")


def _ref_parse_mixed(series: pd.Series) -> pd.Series:
    numeric = series.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool))
    text = series.where(~numeric).astype("string").str.strip()
    text = text.str.replace(r"([+-]\d\d:?\d\d)Z$", r"\1", regex=True)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    if numeric.any():
        epochs = pd.to_datetime(
            pd.to_numeric(series.where(numeric), errors="coerce"),
            unit="s",
            utc=True,
            errors="coerce",
        )
        parsed = parsed.where(~numeric, epochs)
    return parsed


def _ref_iso(values: pd.Series) -> pd.Series:
    out = values.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out.astype(object).where(values.notna(), None)


def _ref_chat_frame(records: list[RawRecord], rejects: list[Reject]) -> pd.DataFrame:
    rows = []
    raw_started, raw_ended, raw_updated, kept = [], [], [], []
    for record in records:
        chat = record.value
        chat_id = chat.get("id")
        if chat_id is None or chat_id == "" or isinstance(chat_id, dict | list | bool):
            rejects.append(
                Reject.of(record.source_file, record.position, "chat has no id", _ref_dump(chat))
            )
            continue
        visitor = chat.get("visitor")
        if type(visitor) is not dict:
            visitor = {}
        session = chat.get("session")
        country = session.get("country_code") if type(session) is dict else None
        kind = chat.get("type")
        if kind not in CHAT_KINDS:
            kind = "chat"
        count, transcript = _ref_render_transcript(chat, kind, visitor)
        rows.append(
            (
                chat_id if type(chat_id) is str else _ref_text(chat_id),
                kind,
                _ref_text(visitor.get("id")),
                _ref_text(visitor.get("name")),
                _ref_text(visitor.get("email")),
                _ref_text(visitor.get("phone")),
                _ref_text(visitor.get("notes")),
                _ref_text(chat.get("department_id")),
                _ref_text(chat.get("department_name")),
                _ref_json_list(chat.get("tags")),
                _ref_text(chat.get("rating")),
                _ref_text(chat.get("comment")),
                bool(chat.get("missed")),
                _ref_json_list(chat.get("agent_ids")),
                _ref_json_list(chat.get("agent_names")),
                _ref_text(country).upper(),
                count,
                transcript,
                hashlib.sha256(orjson.dumps(chat, option=_REF_SORTED)).hexdigest(),
                bool(chat.get("deleted")),
                record.source_file,
                record.position,
            )
        )
        raw_started.append(chat.get("timestamp"))
        raw_ended.append(chat.get("end_timestamp"))
        raw_updated.append(chat.get("update_timestamp"))
        kept.append(record)
    if not kept:
        return empty_chat_frame()
    frame = pd.DataFrame.from_records(rows, columns=list(_REF_ROW_COLUMNS))
    started = _ref_parse_utc(raw_started)
    ended = _ref_parse_utc(raw_ended).fillna(started)
    updated = _ref_parse_utc(raw_updated).fillna(ended)
    frame.insert(2, "started_at", started)
    frame.insert(3, "ended_at", ended)
    frame.insert(4, "updated_at", updated)
    frame.insert(5, "version", _ref_iso(updated).fillna("") + "/" + frame["content_hash"].str[:16])
    bad = frame["started_at"].isna()
    for index in bad[bad].index:
        record = kept[index]
        rejects.append(
            Reject.of(
                record.source_file,
                record.position,
                f"chat timestamp missing or not ISO-8601: {raw_started[index]!r}",
                _ref_dump(record.value),
                chat_id=frame.at[index, "chat_id"],
            )
        )
    if bad.any():
        frame = frame[~bad].reset_index(drop=True)
    return without_content(frame[list(CHAT_COLUMNS)])


def _ref_render_transcript(chat: dict[str, Any], kind: str, visitor: dict[str, Any]):
    lines = []
    history = chat.get("history")
    if type(history) is list:
        for event in history:
            if type(event) is not dict:
                continue
            etype = event.get("type")
            if etype == "chat.msg":
                text = event.get("msg")
                if type(text) is not str:
                    text = _ref_text(text)
            elif etype == "chat.file":
                attachment = (
                    event.get("attachment") if isinstance(event.get("attachment"), dict) else {}
                )
                text = "[file] " + _ref_text(
                    attachment.get("name") or attachment.get("url") or event.get("msg")
                )
            else:
                continue
            if "\n" in text or "\r" in text:
                text = _ref_one_line(text)
            stamp = event.get("timestamp")
            clock = (
                stamp[:19].replace("T", " ")
                if type(stamp) is str and len(stamp) >= 19
                else _ref_clock(stamp)
            )
            name = event.get("name")
            lines.append(f"{clock} {name if type(name) is str else _ref_text(name)}: {text}")
    message = chat.get("message")
    if message and (kind == "offline_msg" or not lines):
        sender = _ref_text(visitor.get("name")) or "visitor"
        lines.append(
            f"{_ref_clock(chat.get('timestamp'))} {sender}: {_ref_one_line(_ref_text(message))}"
        )
    return len(lines), "\n".join(lines)


def _ref_clock(value: Any) -> str:
    text = _ref_text(value)
    return text[:19].replace("T", " ") if len(text) >= 19 else text


def _ref_one_line(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " ⏎ ")


# -- the comparison ------------------------------------------------------------------------


def assert_same_reading(root: Path, batch_size: int) -> int:
    """The reader and the oracle agree batch by batch on every file under ``root``; returns
    how many chats were read."""
    files = discover(root)
    got = list(read_batches(files, batch_size))
    expected = list(_reference_batches(files, batch_size))
    assert len(got) == len(expected)
    for new, old in zip(got, expected, strict=True):
        pd.testing.assert_frame_equal(new.chats, old.chats)
        pd.testing.assert_frame_equal(new.agents, old.agents)
        pd.testing.assert_frame_equal(new.departments, old.departments)
        assert new.rejects == old.rejects
    return sum(len(b.chats) for b in got)


def _drift_corpus(root: Path) -> None:
    """What real exports do: a BOM, cut and blank lines, types that change between records and
    files, new nested fields and history entry types, odd ids and times, deleted chats."""
    bom = b"\xef\xbb\xbf"
    a = chat("a1", "a@example.com", rating="good", messages=[("V", "hi\r\nthere"), ("A", "x\ry")])
    b = chat("b1", "b@example.com", messages=[("V", "hello")], tags=["vip", "b2b"])
    b["rating"] = 5
    b["tags"] = "vip"
    b["session"]["new_nested"] = {"deep": [1, {"x": None}], "f": 1.5}
    b["visitor"]["phone"] = 4155550100
    b["history"] += [
        {"type": "chat.rating", "new_rating": "good", "timestamp": 1},
        {"type": "chat.some_new_kind", "payload": {"any": ["thing"]}},
        {"type": "chat.msg", "name": "V", "msg": 42, "timestamp": None},
        {"type": "chat.msg", "name": None, "msg": None, "timestamp": "2026-11-02"},
        {"type": "chat.msg", "name": 7, "msg": {"rich": ["text"]}, "timestamp": 1762074000},
        {"type": "chat.file", "name": "V", "attachment": {"name": "a.pdf"}, "timestamp": "x"},
        {"type": "chat.file", "name": "V", "attachment": {"url": "https://x.example/f"}},
        {"type": "chat.file", "name": "V", "attachment": "not a dict", "msg": "m\nn"},
        {"type": "chat.file"},
        "not an event",
        None,
    ]
    c = chat("c1")
    c["visitor"] = {"id": None, "name": None, "email": None, "phone": None, "notes": None}
    c["agent_names"] = None
    c["agent_ids"] = [360001, None, "x", 2.5, True]
    c["department_id"] = 17
    c["session"] = "not a dict"
    d = chat("d1", kind="offline_msg", name="Ken", messages=[("Ken", "Call me")])
    d["message"] = "Please\ncall me"
    e = chat("e1", name="Eve", messages=[])
    e["message"] = {"odd": "message"}
    f = chat("f1", deleted=True, tags=["x"], rating="bad", messages=[("F", "gone")])
    g = chat("g1", start="2026-11-02T09:00:00+00:00Z", end="2026-11-02T09:00:00.250000Z")
    h = dict(chat("h1", end=None, updated="garbage"), timestamp=" 2026-11-02T09:00:00Z ")
    i = dict(chat("i1"), timestamp=1762074000, end_timestamp=1762074600.5)
    j = chat("j1", start="yesterday")
    k = dict(chat("k1"), timestamp=None)
    k["type"] = "something new"
    m = chat("m1")
    m["visitor"] = ["not", "a", "dict"]
    m["history"] = {"not": "a list"}
    m["missed"] = "yes"
    m["deleted"] = 0
    m["tags"] = [None, 3, "t", {"x": 1}]
    n = chat("n1", "n@example.com")
    n["history"][0]["name"] = "Ünïcødé 名前"
    n["comment"] = ["a", "list"]
    odd_ids = [dict(chat("z"), id=value) for value in (None, "", {"x": 1}, [1], True, False)]
    numeric_ids = [dict(chat("z"), id=1817700102), dict(chat("z"), id=1.0)]
    lines = [json.dumps(x) for x in (a, b, c, d)]
    lines[2:2] = ["", '{"id": "cut', "   ", "[1, 2]", '"a string"', "17"]
    (root / "chats_drift.jsonl").write_bytes(bom + "\n".join(lines).encode() + b"\n")
    write_ndjson(root / "chats_more.ndjson", [e, f, g, h, i, j, k, m, n])
    write_json(root / "chats_odd_ids.json", page(odd_ids + numeric_ids))
    write_json(root / "chats_page.json.gz", page([chat(f"p{x}") for x in range(5)]), gz=True)
    (root / "chats_bom_page.json").write_bytes(bom + json.dumps(page([chat("q1")])).encode())
    docs = {"docs": {"r1": {k: v for k, v in chat("r").items() if k != "id"}, "r2": "bad"}}
    write_json(root / "bulk.json", docs)
    write_json(root / "array.json", [chat("s1"), "not an object", 5, {"unknown": "record"}])
    text = json.dumps(page([chat("t1"), chat("t2"), chat("t3")]), indent=2)
    (root / "chats_cut.json").write_text(text[: text.index('"t3"') + 10])
    (root / "chats_again.jsonl").write_text(
        json.dumps(dict(a, update_timestamp="2026-12-01T00:00:00Z"))
    )
    agent = {"id": 41, "email": "A@example.com", "display_name": "A", "enabled": True}
    write_json(root / "agents.json", [agent, {"email": "no id"}, dict(agent, id=42, enabled=False)])
    write_json(root / "departments.json", [{"id": 7, "name": "D", "members": [41, None]}, {}])
    write_json(
        root / "mixed_export.json", [chat("u1"), dict(agent, id=43), {"members": [1], "id": 8}]
    )
    (root / "chats_gz.ndjson.gz").write_bytes(
        gzip.compress(b"\n".join(json.dumps(x).encode() for x in (chat("v1"), chat("v2"))))
    )
    (root / "chats_empty.json").write_bytes(b"")
    (root / "chats_broken.json.gz").write_bytes(b"\x1f\x8bgarbage")


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_the_drift_corpus_reads_as_before(tmp_path, batch_size):
    _drift_corpus(tmp_path)
    assert assert_same_reading(tmp_path, batch_size) > 20


@pytest.mark.parametrize("batch_size", [3, 1000])
def test_the_examples_read_as_before(batch_size):
    assert assert_same_reading(ROOT / "examples" / "chat", batch_size) > 0


@pytest.mark.skipif(not (SAMPLES / "chat").is_dir(), reason="no shared samples here")
def test_the_shared_samples_read_as_before():
    assert assert_same_reading(SAMPLES / "chat", 100) > 0


def test_generated_exports_read_as_before(tmp_path):
    generate(tmp_path, 400, 50, seed=11, pages_size=60)
    assert assert_same_reading(tmp_path / "chat", 97) >= 390


_COMPANIONS = st.sampled_from(
    [
        "2026-01-01T00:00:00.123456789Z",  # nanoseconds
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        " 2026-11-02T09:00:00+00:00Z ",
        "2026-11-02T18:00:00+09:00",
        "yesterday",
        "",
        1762074000,
        1762074000.5,
        1e30,
        None,
        True,
        {"not": "a time"},
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1678, 1, 1), max_value=datetime(2261, 12, 31, 23, 59, 59)),
    st.lists(_COMPANIONS, max_size=6),
)
def test_a_plain_start_parses_whatever_its_batch_holds(moment, companions):
    """A chat whose start is plain keeps no text for a reject: it cannot become one."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _plain_start(text)
    try:
        parsed = parse_utc([*companions, text])
    except OutOfBoundsDatetime:
        return  # nanoseconds beside year 1 or 9999: the whole batch fails (as it always did)
    assert parsed.iloc[-1] == pd.Timestamp(moment.replace(microsecond=0), tz="UTC")


@pytest.mark.parametrize(
    "value",
    ["2025-02-30T00:00:00Z", "2025-11-15T24:00:00Z", "2025-11-15T23:59:60Z",
     "1677-12-31T00:00:00Z", "2262-01-01T00:00:00Z", "2025-W46-6T00:02:36Z",
     "2025-11-15 00:02:36Z", "2025-11-15T00:02:36+00:00Z", "2025-11-15T00:02:36.5Z",
     "\u0662\u0660\u0662\u0665-11-15T00:02:36Z", None, 1762074000, " 2025-11-15T00:02:36Z"],
)  # fmt: skip
def test_any_other_start_keeps_its_record_for_a_reject(value):
    assert not _plain_start(value)
