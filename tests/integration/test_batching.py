"""Results never depend on how the chats are batched: chunk size, backfill windows.

Every order-dependent decision (which chat creates a lead, its owner from a shared pool, which
chat fills a phone) is made in the one stable order, so a run in chunks of 40, a run in one chunk
and a backfill window by window leave the same store, row for row. A Dask backfill, which batches
by partition and window, relies on exactly this.
"""

from __future__ import annotations

from datetime import timedelta

from integration.scenario import batched_settings, sync
from storecheck import dump


def test_chunk_size_and_windows_never_change_the_result(store_url, tmp_path, generated):
    chats, sell, manifest = generated
    one_chunk = f"sqlite:///{tmp_path / 'one.db'}"
    whole = sync(one_chunk, chats, sell, settings=batched_settings(one_chunk, 20_000)).report
    assert whole["outcomes"]["lead_created"] == manifest["expected_outcomes"]["lead_created"]
    assert whole["outcomes"]["matched_new_lead"] > 0 and whole["writes"]["phone_updates"] > 0

    small = sync(store_url, chats, sell, settings=batched_settings(store_url, 40)).report
    assert small["outcomes"] == whole["outcomes"]
    assert small["assignments"] == whole["assignments"]
    assert dump(store_url, drop_run_columns=True) == dump(one_chunk, drop_run_columns=True)

    windowed = f"sqlite:///{tmp_path / 'windows.db'}"
    sync(windowed, chats, sell, settings=batched_settings(windowed, 25), mode="backfill",
         window=timedelta(days=60))  # fmt: skip
    assert dump(windowed, drop_run_columns=True) == dump(one_chunk, drop_run_columns=True)
