"""The stage keeps the same rows, to the byte, however the chats reach it: added by the run's
process, or through the parsing workers' shards (which keep a file's rows as they come and
leave the choice of a chat's version to the merge), and as the former conversion stored them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from test_fast_read_equivalence import _drift_corpus

from etl.extract.chats import read_batches
from etl.extract.files import discover
from etl.stage.chats import ChatStage, fill
from etl.stage.versions import keep_newest
from etl.vocab import CHAT_COLUMNS

from builders import chat, page, write_json, write_ndjson

_COLS = ", ".join(f'"{c}"' for c in CHAT_COLUMNS)


def _reference_rows(files) -> list[tuple]:
    """What the stage held before: each frame converted column by column with
    ``to_numpy(object, na_value=None)``, upserted into a keyed table in file order."""
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE chats ({_COLS})")
    db.execute("CREATE UNIQUE INDEX by_id ON chats (chat_id)")
    insert = (
        f"INSERT INTO chats ({_COLS}) VALUES ({', '.join('?' for _ in CHAT_COLUMNS)}) "  # noqa: S608
        "ON CONFLICT (chat_id) DO UPDATE SET "
        + ", ".join(f'"{c}" = excluded."{c}"' for c in CHAT_COLUMNS if c != "chat_id")
        + " WHERE excluded.version > chats.version"
    )
    for batch in read_batches(files, 5):
        if batch.chats.empty:
            continue
        out = batch.chats[list(CHAT_COLUMNS)].copy()
        for name in ("started_at", "ended_at", "updated_at"):
            micros = out[name].astype("datetime64[us, UTC]").astype("int64")
            out[name] = micros.astype(object).where(out[name].notna(), None)
        for name in ("missed", "deleted"):
            out[name] = out[name].astype(int)
        columns = [out[n].to_numpy(dtype=object, na_value=None).tolist() for n in CHAT_COLUMNS]
        db.executemany(insert, zip(*columns, strict=True))
    return db.execute(f"SELECT {_COLS} FROM chats ORDER BY chat_id").fetchall()  # noqa: S608


def _staged_rows(files, scratch: Path, workers: int) -> list[tuple]:
    stage = ChatStage(scratch)
    try:
        list(fill(stage, files, 5, workers))
        assert not list(stage.path.parent.glob("shard-*"))  # every shard merged and removed
        return stage._db.execute(f"SELECT {_COLS} FROM chats ORDER BY chat_id").fetchall()  # noqa: S608
    finally:
        stage.close()


def _versions_met_again(root: Path) -> None:
    """The same chat within one file and across files: newer, older and tied versions."""
    newer = dict(chat("x1", "new@example.com"), update_timestamp="2026-12-01T00:00:00Z")
    older = dict(chat("x1", "old@example.com"), update_timestamp="2026-10-01T00:00:00Z")
    write_ndjson(
        root / "chats_a.jsonl",
        [chat("x1"), older, newer, chat("x2"), chat("x2"), dict(chat("x3"), deleted=True)]
        + [chat(f"y{i}", f"y{i}@example.com") for i in range(12)],
    )
    write_json(root / "chats_b.json", page([chat("x3"), older, chat("x2", "tie@example.com")]))
    write_ndjson(root / "chats_c.jsonl", [newer, dict(newer, comment="same time, other text")])
    (root / "chats_d.jsonl").write_text(json.dumps(chat("x4")) + "\n{broken\n")


@pytest.mark.parametrize("corpus", [_versions_met_again, _drift_corpus])
def test_workers_shards_and_the_former_conversion_stage_the_same_rows(tmp_path, corpus):
    source, scratch = tmp_path / "in", tmp_path / "scratch"
    source.mkdir()
    scratch.mkdir()
    corpus(source)
    files = discover(source)
    expected = _reference_rows(files)
    assert len(expected) > 5
    assert _staged_rows(files, scratch, 1) == expected
    assert _staged_rows(files, scratch, 2) == expected


def test_a_staged_chat_comes_back_as_it_was_read(tmp_path):
    (tmp_path / "in").mkdir()
    _drift_corpus(tmp_path / "in")
    files = discover(tmp_path / "in")
    read = pd.concat([b.chats for b in read_batches(files, 1000)], ignore_index=True)
    read = keep_newest(read)  # a1 is met twice
    stage = ChatStage(tmp_path)
    try:
        list(fill(stage, files, 1000, 2))
        back = pd.concat(list(stage.chunks(1000)), ignore_index=True)
    finally:
        stage.close()
    by_id = read.set_index("chat_id").sort_index()
    pd.testing.assert_frame_equal(back.set_index("chat_id").sort_index(), by_id)
