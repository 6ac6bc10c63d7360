"""Backfill: windows over chat start time, each committed on its own; equals a sync of the same chats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from builders import chat, page, write_json
from integration.failing import fail_write
from integration.scenario import make_exports, settings_for, sync
from storecheck import dump, rows

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 5, tzinfo=UTC)


def with_pool(url, **extra):
    settings = settings_for(url)
    data = settings.model_dump()
    data["assignment"] = {"pools": {"p": {"members": [101, 102]}}, "default_pool": "p"}
    data["run"]["chunk_size"] = 2
    data.update(extra)
    return type(settings).model_validate(data)


def exports(tmp_path):
    chats, sell = make_exports(tmp_path)
    more = [
        chat(f"n{i}", f"new{i % 4}@shop.example", start=f"2026-11-0{1 + i % 4}T0{i % 10}:00:00Z")
        for i in range(12)
    ]
    write_json(chats / "chats_new.json", page(more))
    write_json(
        chats / "chats_later.json",
        page([chat("late", "late@shop.example", start="2026-12-24T00:00:00Z")]),
    )
    return chats, sell


def backfill(url, chats, sell, settings, **options):
    return sync(url, chats, sell, settings=settings, mode="backfill", since=SINCE, until=UNTIL,
                window=options.pop("window", timedelta(days=1)), **options)  # fmt: skip


def test_backfill_equals_sync_of_the_same_chats(store_url, tmp_path):
    chats, sell = exports(tmp_path)
    report = backfill(store_url, chats, sell, with_pool(store_url)).report
    assert report["inputs"]["chats_outside_window"] == 1
    assert report["accounting"]["balanced"]
    assert rows(store_url, "SELECT count(*) FROM backfill_windows WHERE run_id = 1") == [(4,)]

    # the same chats, without the one outside the window, through sync
    reference_url = f"sqlite:///{tmp_path / 'ref.db'}"
    (chats / "chats_later.json").unlink()
    sync(reference_url, chats, sell, settings=with_pool(reference_url))
    assert dump(store_url, drop_run_columns=True) == dump(reference_url, drop_run_columns=True)


def test_backfill_does_not_mark_chat_files_loaded(store_url, tmp_path):
    chats, sell = exports(tmp_path)
    backfill(store_url, chats, sell, with_pool(store_url))
    report = sync(store_url, chats, sell, settings=with_pool(store_url)).report
    assert report["inputs"]["chat_files"] == 5  # agents.json and all four chat files
    assert rows(store_url, "SELECT outcome FROM run_outcomes WHERE chat_id = 'late'") == [
        ("lead_created",)
    ]


def test_resume_continues_after_the_last_finished_window(store_url, tmp_path, monkeypatch):
    chats, sell = exports(tmp_path)
    settings = with_pool(store_url)
    undo = fail_write(monkeypatch, "finish_window", 3, RuntimeError("store went away"))
    with pytest.raises(RuntimeError):
        backfill(store_url, chats, sell, settings)
    undo()
    assert rows(store_url, "SELECT status FROM runs") == [("failed",)]
    windows_before = rows(store_url, "SELECT window_start FROM backfill_windows ORDER BY 1")
    assert len(windows_before) == 2

    resumed = backfill(store_url, chats, sell, settings, resume=True).report
    assert resumed["run_id"] == 1 and resumed["status"] == "succeeded"
    assert rows(store_url, "SELECT count(*) FROM backfill_windows WHERE run_id = 1") == [(4,)]

    reference_url = f"sqlite:///{tmp_path / 'ref.db'}"
    reference = backfill(reference_url, chats, sell, with_pool(reference_url)).report
    for key in ("outcomes", "accounting", "writes", "assignments"):
        assert resumed[key] == reference[key], key
    assert dump(store_url, drop_run_columns=True) == dump(reference_url, drop_run_columns=True)


def test_without_resume_a_new_backfill_starts(store_url, tmp_path):
    chats, sell = exports(tmp_path)
    backfill(store_url, chats, sell, with_pool(store_url))
    again = backfill(store_url, chats, sell, with_pool(store_url), resume=True).report
    assert again["run_id"] == 2
    assert "nothing to resume" in " ".join(again["warnings"])
    assert again["writes"]["leads_created"] == 0


def test_backfill_dry_run_and_no_create(store_url, tmp_path):
    chats, sell = exports(tmp_path)
    dry = backfill(
        store_url, chats, sell, with_pool(store_url), dry_run=True, create_leads=False
    ).report
    assert dry["outcomes"]["lead_created"] == 0 and dry["mode"] == "dry-run"
    assert rows(store_url, "SELECT count(*) FROM runs") == [(0,)]
    assert rows(store_url, "SELECT count(*) FROM backfill_windows") == [(0,)]
