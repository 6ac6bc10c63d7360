"""The Dask engine's partitioning, without a cluster: the same chats as the single-process stage."""

from __future__ import annotations

import pandas as pd

from etl.extract.files import discover
from etl.run.dask import _merge, _read, _window_counts
from etl.stage.chats import ChatStage

from builders import chat, page, write_json


def test_partitions_hold_what_the_stage_holds(tmp_path):
    """Every chat in exactly one partition, its newest version, whatever the file order."""
    write_json(tmp_path / "a.json", page([
        chat("c1", "a@example.com", start="2026-11-02T09:00:00Z", updated="2026-11-02T09:10:00Z"),
        chat("c2", "b@example.com", start="2026-11-02T10:00:00Z"),
        chat("c3", "", start="2026-11-03T10:00:00Z"),
    ]))  # fmt: skip
    write_json(tmp_path / "b.json", page([
        chat("c1", "a.new@example.com", start="2026-11-02T09:00:00Z", updated="2026-11-04T00:00:00Z"),
        chat("c2", "b@example.com", start="2026-11-02T10:00:00Z"),  # the same version again
        chat("c4", "d@example.com", start="2026-11-01T08:00:00Z"),
    ]))  # fmt: skip
    files = discover(tmp_path)
    for order in (files, files[::-1]):
        reads = [_read(source, 100, 3) for source in order]
        parts = [_merge(n, *[r[0] for r in reads]) for n in range(3)]
        ids = [i for p in parts for i in p["chat_id"]]
        assert sorted(ids) == ["c1", "c2", "c3", "c4"]  # each once
        merged = pd.concat(parts).set_index("chat_id")
        assert merged.at["c1", "visitor_email"] == "a.new@example.com"
        with ChatStage() as stage:
            for source in order:  # the single-process engine stages file after file
                (whole,), _meta = _read(source, 100, 1)
                stage.add(whole)
            staged = pd.concat(list(stage.chunks(100))).set_index("chat_id")
        assert staged["version"].sort_index().equals(merged["version"].sort_index())
        for part in parts:  # each partition in the stable order
            assert part[["started_at", "chat_id"]].equals(
                part.sort_values(["started_at", "chat_id"])[["started_at", "chat_id"]]
            )


def test_window_counts_split_at_the_edges(tmp_path):
    write_json(tmp_path / "a.json", page([
        chat(f"c{i}", start=f"2026-11-0{1 + i}T00:00:00Z") for i in range(4)
    ]))  # fmt: skip
    (source,) = discover(tmp_path)
    chats = _merge(0, _read(source, 100, 1)[0])
    edges = pd.to_datetime(["2026-11-01", "2026-11-02", "2026-11-04", "2026-11-09"], utc=True)
    windows = list(zip(edges[:-1], edges[1:], strict=True))
    assert _window_counts(chats, windows) == [1, 2, 1]
