"""Results never depend on how the chats are batched: chunk size, commit size, backfill windows.

Every order-dependent decision (which chat creates a lead, its owner from a shared pool, which
chat fills a phone) is made in the one stable order, so a run in chunks of 40, a run in one chunk
and a backfill window by window leave the same store, row for row. A Dask backfill, which batches
by partition and window, relies on exactly this.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from etl.load import faults

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


@pytest.mark.parametrize("write_process", [True, False], ids=["writer_process", "inline"])
def test_commit_size_groups_chunks_in_one_transaction_and_never_changes_the_result(
    store_url, tmp_path, generated, monkeypatch, write_process
):
    """Counted by the fault points, which a writer process hands back to the planner: a commit
    counts whichever process makes it."""
    chats, sell, _manifest = generated
    monkeypatch.setenv("CHATSELL_KILL_AT", "after_commit:1000000000")  # counts, never kills

    def commits(url: str, commit_size: int | None) -> int:
        faults.adopt({})
        settings = batched_settings(url, 40, commit_size, write_process=write_process)
        sync(url, chats, sell, settings=settings)
        return faults.counts()["after_commit"]

    per_chunk = f"sqlite:///{tmp_path / 'per_chunk.db'}"
    one_each = commits(per_chunk, None)
    grouped = commits(store_url, 200)
    chunks = -(-len(dump(per_chunk)["chats"]) // 40)
    assert one_each >= chunks  # every chunk committed on its own
    assert one_each - grouped >= chunks - -(-chunks // 5)  # five chunks a transaction
    assert dump(store_url, drop_run_columns=True) == dump(per_chunk, drop_run_columns=True)


def test_the_writer_process_and_inline_writes_leave_the_same_store(store_url, tmp_path, generated):
    chats, sell, _manifest = generated
    inline = f"sqlite:///{tmp_path / 'inline.db'}"
    here = sync(inline, chats, sell, settings=batched_settings(inline, 40, 120, False)).report
    settings = batched_settings(store_url, 40, 120, write_process=True)
    there = sync(store_url, chats, sell, settings=settings).report
    for key in ("inputs", "outcomes", "accounting", "writes", "assignments", "rejects"):
        assert there[key] == here[key], key
    assert there["writes"]["activities_inserted"] > 0 and there["writes"]["leads_created"] > 0
    assert dump(store_url, drop_run_columns=True) == dump(inline, drop_run_columns=True)


def test_a_first_sync_looks_up_none_of_its_chats_and_a_second_looks_up_all(
    store_url, tmp_path, generated, monkeypatch
):
    """A chat is staged once and planned in one chunk: when the store holds no chat and no
    phone change as the chunks begin, no chunk can find its own chats there, so none is looked
    up. Once it holds them, every chunk's are, and a --full run writes nothing new."""
    from etl.load import writers
    from etl.load.store import Store

    chats, sell, _ = generated
    looked_up = {"versions": 0, "phones": 0}
    real_versions, real_phones = Store.chat_versions, writers.applied_phone_changes

    def versions(store, chat_ids):
        looked_up["versions"] += 1
        return real_versions(store, chat_ids)

    def phones(conn, chat_ids):
        looked_up["phones"] += 1
        return real_phones(conn, chat_ids)

    monkeypatch.setattr(Store, "chat_versions", versions)
    monkeypatch.setattr(writers, "applied_phone_changes", phones)
    first = sync(store_url, chats, sell, settings=batched_settings(store_url, 40)).report
    assert first["writes"]["phone_updates"] > 0 and first["writes"]["activities_inserted"] > 0
    assert looked_up == {"versions": 0, "phones": 0}
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    sync(reference, chats, sell, settings=batched_settings(reference, 20_000))
    assert dump(store_url, drop_run_columns=True) == dump(reference, drop_run_columns=True)

    full = sync(store_url, chats, sell, settings=batched_settings(store_url, 40), full=True)
    chunks = -(-first["inputs"]["chats_read"] // 40)
    assert looked_up["versions"] >= chunks and looked_up["phones"] >= chunks
    new = ("activities_inserted", "activities_updated", "leads_created", "notes_created",
           "notifications_created", "phone_updates")  # fmt: skip
    assert {key: full.report["writes"][key] for key in new} == dict.fromkeys(new, 0)
