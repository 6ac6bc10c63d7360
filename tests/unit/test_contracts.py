"""The contracts and their implementations: every sink is a Sink, every stage a Stage, and the
two stages hand out the same chats; the rule of which version wins is the same in SQL and pandas."""

from __future__ import annotations

import pandas as pd

from etl import contracts
from etl.extract.files import discover
from etl.load.sinks import InlineSink, ProcessSink
from etl.load.store import Store
from etl.run.dask import DaskStage, PartitionSink, _merge, _read
from etl.run.dry import DrySink
from etl.stage.chats import ChatStage
from etl.stage.versions import keep_newest
from etl.vocab import CHAT_COLUMNS, RunCounters

from builders import chat, page, write_json


class _NoCluster:
    """A Dask client's submit and gather, run here (what the workers would compute)."""

    def submit(self, fn, *args, **_options):
        return fn(*args)

    def gather(self, futures):
        return list(futures)


def _exports(directory):
    write_json(directory / "a.json", page([
        chat("c1", "a@example.com", start="2026-11-02T09:00:00Z", updated="2026-11-02T09:10:00Z"),
        chat("c2", "b@example.com", start="2026-11-02T10:00:00Z"),
        chat("c3", "", start="2026-11-03T10:00:00Z"),
        chat("c5", "e@example.com", start="2026-11-02T10:00:00Z"),
    ]))  # fmt: skip
    write_json(directory / "b.json", page([
        chat("c1", "a.new@example.com", start="2026-11-02T09:00:00Z", updated="2026-11-04T00:00:00Z"),
        chat("c2", "b@example.com", start="2026-11-02T10:00:00Z"),  # the same version again
        chat("c4", "d@example.com", start="2026-11-01T08:00:00Z"),
    ]))  # fmt: skip
    return discover(directory)


def test_every_sink_is_a_sink(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        for sink in (
            InlineSink(store, 1, RunCounters(), 10),
            ProcessSink(store),  # (not started: nothing forked)
            DrySink(store, RunCounters(), keep_page=False),
        ):
            assert isinstance(sink, contracts.Sink), type(sink).__name__
        partition = PartitionSink(store, 1)
        assert all(callable(getattr(partition, m)) for m in ("apply", "applied", "commit"))
    finally:
        store.dispose()


def test_both_stages_are_stages_and_hand_out_the_same_chats(tmp_path):
    files = _exports(tmp_path)
    with ChatStage(tmp_path) as local:
        for source in files:
            for read in _read(source, 100, 1)[0]:
                local.add(read)
        reads = [_read(source, 100, 3) for source in files]
        dask = DaskStage(_NoCluster(), [_merge(n, *[r[0] for r in reads]) for n in range(3)])
        for stage in (local, dask):
            assert isinstance(stage, contracts.Stage), type(stage).__name__
        assert local.count() == dask.count() == 5
        assert local.span() == dask.span()
        assert local.staged(["c1", "c9", "c4"]) == dask.staged(["c1", "c9", "c4"]) == {"c1", "c4"}
        since, until = pd.Timestamp("2026-11-02T00:00:00Z"), pd.Timestamp("2026-11-03T00:00:00Z")
        for window in ((None, None), (since, until)):
            mine = [c[["chat_id", "visitor_email"]] for c in local.chunks(2, *window)]
            theirs = [c[["chat_id", "visitor_email"]] for c in dask.chunks(2, *window)]
            assert [len(c) for c in mine] == [len(c) for c in theirs]
            pd.testing.assert_frame_equal(
                pd.concat(mine, ignore_index=True), pd.concat(theirs, ignore_index=True)
            )
        first = pd.concat(list(local.chunks(10)), ignore_index=True)
        assert list(first["chat_id"]) == ["c4", "c1", "c2", "c5", "c3"]
        assert first.set_index("chat_id").loc["c1", "visitor_email"] == "a.new@example.com"


def test_the_version_rule_is_one_rule_in_sql_and_in_pandas(tmp_path):
    """A strictly newer version replaces; on a tie the first met stays, in either order."""
    files = _exports(tmp_path)
    frames = [f for source in files for f in _read(source, 100, 1)[0]]
    for order in (frames, frames[::-1]):
        with ChatStage(tmp_path) as stage:
            for frame in order:
                stage.add(frame)
            staged = pd.concat(list(stage.chunks(100)), ignore_index=True)
        kept = keep_newest(pd.concat(order, ignore_index=True))
        kept = kept.sort_values(["started_at", "chat_id"]).reset_index(drop=True)
        assert list(staged["chat_id"]) == list(kept["chat_id"])
        assert list(staged["version"]) == list(kept["version"])
        assert list(staged["visitor_email"]) == list(kept["visitor_email"])
        # the tie (c2, the same version in both files): the one met first stays
        assert list(staged["source_file"]) == list(kept["source_file"])
        first_file = order[0]["source_file"].iloc[0]
        assert staged.set_index("chat_id").loc["c2", "source_file"] == first_file
    assert set(CHAT_COLUMNS) <= set(staged.columns)
