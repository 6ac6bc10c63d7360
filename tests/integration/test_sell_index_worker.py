"""The Sell snapshot is diffed, and the match index built, in one of the run's workers.

A million records' ids, emails and hashes are Python strings: a process that held them keeps
most of their pages after they are freed. So the run's process receives only the compact index
and counts, the writer reads the changed ids and hashes as arrays, and none of it may change a
result: a run with one worker (everything in the run's process) leaves the same store.
"""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np

from etl.run import sell as run_sell

from integration.scenario import batched_settings, sync
from storecheck import dump


def test_the_diff_runs_in_a_worker_and_leaves_what_one_process_would(
    store_url, tmp_path, generated, monkeypatch
):
    chats, sell, manifest = generated
    where = tmp_path / "diffed_in"
    kept = tmp_path / "changes.pickle"
    diff_and_index, write_changes = run_sell._diff_and_index, run_sell._write_changes

    def spy_diff(*args, **kwargs):  # (a forked worker inherits the patch)
        with open(where, "a") as out:
            out.write(f"{os.getpid()}\n")
        return diff_and_index(*args, **kwargs)

    def spy_changes(path, *args):
        write_changes(path, *args)
        shutil.copy(path, kept)

    monkeypatch.setattr(run_sell, "_diff_and_index", spy_diff)
    monkeypatch.setattr(run_sell, "_write_changes", spy_changes)
    settings = batched_settings(store_url, 500)
    assert settings.run.workers > 1
    report = sync(store_url, chats, sell, settings=settings).report
    assert report["outcomes"]["lead_created"] == manifest["expected_outcomes"]["lead_created"]

    pids = where.read_text().split()
    assert len(pids) == 1 and int(pids[0]) != os.getpid()  # one diff, not in the run's process
    with open(kept, "rb") as spilled:
        changes, _deletes = pickle.load(spilled)  # noqa: S301 - the test's own copy
    ids, hashes = changes["leads"]
    assert len(ids) == report["inputs"]["sell_records"]["leads"] > 0  # a first sync: all new
    assert ids.dtype == np.int64 and hashes.dtype.kind == "S"  # arrays, not Python objects

    alone = f"sqlite:///{tmp_path / 'one_worker.db'}"
    one = batched_settings(alone, 500)
    one = one.model_copy(update={"run": one.run.model_copy(update={"workers": 1})})
    monkeypatch.setattr(run_sell, "_diff_and_index", diff_and_index)
    assert sync(alone, chats, sell, settings=one).report["outcomes"] == report["outcomes"]
    assert dump(store_url, drop_run_columns=True) == dump(alone, drop_run_columns=True)


def test_the_compact_read_gives_the_columns_crm_frames_gives(
    store_url, tmp_path, generated, monkeypatch
):
    """The index reads leads and contacts with their text compact (``Store.crm_compact``), a
    fetch at a time: each column, built back, is what ``crm_frames`` reads, dtype and all, on
    either store."""
    import pandas as pd

    from etl.load.store import INDEX_COLUMNS, Store, crm

    chats, sell, _manifest = generated
    sync(store_url, chats, sell, settings=batched_settings(store_url, 500))
    monkeypatch.setattr(crm, "FETCH_ROWS", 7)  # many fetches, the last one short
    store = Store(store_url)
    try:
        for name in ("leads", "contacts"):
            frame = store.crm_frames([name], only=INDEX_COLUMNS)[name]
            columns, rows = store.crm_compact(name, INDEX_COLUMNS)
            assert rows == len(frame) > 0 and list(columns) == list(frame.columns)
            for column, value in columns.items():
                got = value.series() if hasattr(value, "series") else value
                pd.testing.assert_series_equal(got, frame[column], check_names=False)
    finally:
        store.dispose()


def test_the_leads_diff_reads_only_the_exported_leads_keys(
    store_url, tmp_path, generated, monkeypatch
):
    """The diff compares exported leads with the store's exported ones, by hash: the leads a run
    made from chats (no Sell id, no hash, a million of them at 3M chats) are not read for it,
    nor any lead's email. A --full run after the first diffs nothing and writes nothing new."""
    from etl.load.store import Store

    chats, sell, _manifest = generated
    settings = batched_settings(store_url, 500)
    first = sync(store_url, chats, sell, settings=settings).report
    assert first["writes"]["leads_created"] > 0
    read: list[tuple] = []
    real = Store.crm_frames

    def spy(self, names=None, only=None, **more):
        frames = real(self, names, only, **more)
        if names == ["leads"]:
            read.append((tuple(frames["leads"].columns), len(frames["leads"])))
        return frames

    monkeypatch.setattr(Store, "crm_frames", spy)
    one = settings.model_copy(update={"run": settings.run.model_copy(update={"workers": 1})})
    full = sync(store_url, chats, sell, settings=one, full=True).report  # (the diff here)
    exported = first["inputs"]["sell_records"]["leads"]
    assert read == [(("id", "sell_hash"), exported)]
    assert full["writes"]["leads_created"] == 0 and full["writes"]["activities_inserted"] == 0


def test_the_index_from_compact_tables_is_the_index_from_frames(store_url, tmp_path, generated):
    """The diff builds the index from the leads and contacts held compact (``CompactTable``:
    ids read as Int64 a fetch at a time, statuses compared where they are held); the index is
    the one the same CRM read as frames makes: every target, in the same order, dtype and all,
    as given and with changed rows overlaid."""
    import pandas as pd

    from etl.load.store import INDEX_COLUMNS, Store
    from etl.transform.match import build_index
    from etl.transform.sell import CompactTable, SellDelta, crm_after

    chats, sell, _manifest = generated
    sync(store_url, chats, sell, settings=batched_settings(store_url, 500))
    store = Store(store_url)
    try:
        frames = store.crm_frames(only=INDEX_COLUMNS)
        compact = {name: store.crm_compact(name, INDEX_COLUMNS) for name in ("leads", "contacts")}
    finally:
        store.dispose()
    lead = frames["leads"].iloc[[0]].assign(name="Renamed", phone=None)  # an exported change
    for changed in (None, lead):
        delta = SellDelta({"leads": changed} if changed is not None else {})
        after = crm_after({name: frames[name].copy() for name in ("leads", "contacts")}, delta)
        tables = {
            name: CompactTable(name, dict(compact[name][0]), compact[name][1],
                               changed if name == "leads" else None)
            for name in ("leads", "contacts")
        }  # fmt: skip
        rest = (frames["deals"], frames["users"], frames["lead_conversions"], ["Converted"])
        held = build_index(tables["leads"], tables["contacts"], *rest, run_id=1, consume=True)
        expected = build_index(after["leads"], after["contacts"], *rest, run_id=1)
        mine, theirs = held._targets, expected._targets
        assert len(theirs.hashes) > 100 and (mine.hashes == theirs.hashes).all()
        assert mine.emails.tolist() == theirs.emails.tolist()
        every = np.arange(len(theirs.hashes))
        assert list(mine.columns) == list(theirs.columns)
        for name, column in theirs.columns.items():
            pd.testing.assert_series_equal(mine.columns[name].take(every), column.take(every))


def test_the_origins_of_a_runs_leads_are_read_as_the_index_found_them(
    store_url, tmp_path, generated
):
    """The diff reads the leads without their origin chats (1.2M chat ids at 3M chats) and the
    origins of the leads the run created (a resumed run meets them) alone: the same as the
    index finds in the leads' columns."""
    import pandas as pd

    from etl.load.store import INDEX_COLUMNS, Store
    from etl.transform.match import build_index

    chats, sell, _manifest = generated
    report = sync(store_url, chats, sell, settings=batched_settings(store_url, 500)).report
    assert report["writes"]["leads_created"] > 0
    store = Store(store_url)
    try:
        frames = store.crm_frames(only=INDEX_COLUMNS)
        for run_id in (report["run_id"], report["run_id"] + 1):  # its leads; none
            index = build_index(
                frames["leads"], frames["contacts"], frames["deals"], frames["users"],
                frames["lead_conversions"], ["Converted"], run_id=run_id,
            )  # fmt: skip
            pd.testing.assert_series_equal(store.run_origins(run_id), index.origins)
        assert len(store.run_origins(report["run_id"])) == report["writes"]["leads_created"]
    finally:
        store.dispose()
