"""Sync against a real store, on SQLite and PostgreSQL: accounting, idempotency, versions."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from etl.load import writers
from etl.load.store import Store

from builders import chat, contact, envelope, lead, page, write_json, write_ndjson
from integration.failing import fail_write
from integration.scenario import make_exports, settings_for, sync
from storecheck import dump, rows


def test_every_chat_read_has_one_outcome(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    report = sync(store_url, chats, sell).report
    assert report["accounting"] == {"chats_read": 9, "outcomes_total": 9, "balanced": True}
    assert report["outcomes"] == {
        "matched": 4,
        "lead_created": 1,
        "matched_new_lead": 1,
        "lead_skipped": 0,
        "no_email": 1,
        "invalid_email": 1,
        "rejected": 1,
        "removed": 0,
    }
    assert report["removed_reasons"] == {}
    assert report["multi_match_emails"] == 1
    assert report["rejects"] == 1
    assert report["inputs"]["sell_records"] == {"leads": 3, "contacts": 3, "deals": 2, "users": 2}
    outcomes = dict(rows(store_url, "SELECT chat_id, outcome FROM run_outcomes WHERE run_id = 1"))
    assert len(outcomes) == 9
    assert (
        outcomes["c1"] == "matched"
        and outcomes["c5"] == "no_email"
        and outcomes["c6"] == "invalid_email"
    )
    rejected = [k for k, v in outcomes.items() if v == "rejected"]
    assert len(rejected) == 1 and rejected[0].endswith("chats_more.jsonl#line 5")
    assert rows(
        store_url,
        "SELECT chat_id, outcome, records FROM run_outcomes WHERE chat_id IN ('c7', 'c8') ORDER BY 1",
    ) == [
        ("c7", "lead_created", "lead:-1"),
        ("c8", "matched_new_lead", "lead:-1"),
    ]


def test_activities_attach_to_every_record_of_the_email(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    report = sync(store_url, chats, sell).report
    activities = rows(
        store_url, "SELECT chat_id, record_type, record_id FROM activities ORDER BY 1, 2, 3"
    )
    assert activities == [
        ("c1", "lead", 1),
        ("c2", "contact", 10),
        ("c2", "deal", 30),
        ("c3", "contact", 20),
        ("c3", "deal", 31),
        ("c4", "contact", 11),
        ("c4", "lead", 2),
        ("c7", "lead", -1),
        ("c8", "lead", -1),
    ]
    assert report["writes"]["activities_inserted"] == 9
    records = dict(
        rows(store_url, "SELECT chat_id, records FROM run_outcomes WHERE records IS NOT NULL")
    )
    assert records["c2"] == "contact:10;deal:30"
    assert records["c4"] == "lead:2;contact:11"


def test_activity_carries_what_the_feed_shows(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    settings = settings_for(store_url)
    settings.chat.subdomain = "acme"
    sync(store_url, chats, sell, settings=settings)
    (row,) = rows(
        store_url,
        "SELECT kind, agent_names, agent_user_id, visitor_name, record_name, message_count, transcript, transcript_url "
        "FROM activities WHERE chat_id = 'c1'",
    )
    kind, agents, agent_user, visitor, record, count, transcript, url = row
    assert (kind, json.loads(agents), agent_user, visitor, record, count) == (
        "chat", ["Aiko Agent"], 102, "Ann Archer", "Lee Lead1", 2,
    )  # fmt: skip
    assert transcript.splitlines()[0] == "2026-11-02 09:00:10 Ann Archer: Hi"
    assert url == "https://acme.zendesk.com/chat/agent#chats/c1"


def test_second_sync_reads_nothing_and_changes_nothing(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    before = dump(store_url)
    report = sync(store_url, chats, sell).report
    assert dump(store_url) == before
    assert report["inputs"]["chat_files"] == 0
    assert report["accounting"] == {"chats_read": 0, "outcomes_total": 0, "balanced": True}


def test_full_resync_writes_nothing_new(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    before = dump(store_url)
    report = sync(store_url, chats, sell, full=True).report
    assert dump(store_url) == before
    writes = report["writes"]
    assert (
        writes["activities_inserted"],
        writes["activities_updated"],
        writes["activities_unchanged"],
    ) == (0, 0, 9)
    assert report["accounting"]["balanced"] and report["accounting"]["chats_read"] == 9


def test_changed_file_is_read_again(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    write_ndjson(
        chats / "chats_more.jsonl", [chat("c9", "a@example.com", start="2026-11-04T09:00:00Z")]
    )
    report = sync(store_url, chats, sell).report
    assert report["inputs"]["chat_files"] == 1
    assert report["outcomes"]["matched"] == 1
    assert rows(store_url, "SELECT count(*) FROM activities WHERE chat_id = 'c9'") == [(1,)]


def test_newer_version_updates_activity_in_place(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    newer = chat("c1", "a@example.com", name="Ann Archer", start="2026-11-02T09:00:00Z",
                 updated="2026-11-05T00:00:00Z", tags=["notify_sales"], rating="good")  # fmt: skip
    write_json(chats / "chats_page2.json", page([newer]))
    report = sync(store_url, chats, sell).report
    assert report["writes"]["activities_updated"] == 1
    assert rows(store_url, "SELECT tags, rating FROM activities WHERE chat_id = 'c1'") == [
        ('["notify_sales"]', "good")
    ]


def _versions(tmp_path):
    old = chat(
        "c1",
        "a@example.com",
        start="2026-11-02T09:00:00Z",
        updated="2026-11-02T09:10:00Z",
        tags=["old"],
    )
    new = chat(
        "c1",
        "a@example.com",
        start="2026-11-02T09:00:00Z",
        updated="2026-11-06T09:10:00Z",
        tags=["new"],
    )
    return old, new


@pytest.mark.parametrize("order", ["old-then-new", "new-then-old", "same-batch"])
def test_older_version_never_overwrites_newer(store_url, tmp_path, order):
    chats, sell = make_exports(tmp_path)
    old, new = _versions(tmp_path)
    first, second = (old, new) if order == "old-then-new" else (new, old)
    if order == "same-batch":
        write_ndjson(chats / "chats_z.jsonl", [new, old])
        sync(store_url, chats, sell)
    else:
        write_json(chats / "chats_page1.json", page([first]))
        sync(store_url, chats, sell)
        write_json(chats / "chats_page9.json", page([second]))
        sync(store_url, chats, sell)
    assert rows(store_url, "SELECT tags FROM activities WHERE chat_id = 'c1'") == [('["new"]',)]
    assert rows(store_url, "SELECT tags FROM chats WHERE chat_id = 'c1'") == [('["new"]',)]


def test_changed_email_moves_the_activity(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    moved = chat(
        "c1", "b@example.com", start="2026-11-02T09:00:00Z", updated="2026-11-07T00:00:00Z"
    )
    write_json(chats / "chats_page2.json", page([moved]))
    report = sync(store_url, chats, sell).report
    assert rows(
        store_url,
        "SELECT record_type, record_id FROM activities WHERE chat_id = 'c1' ORDER BY 1, 2",
    ) == [
        ("contact", 10),
        ("deal", 30),
    ]
    assert report["writes"]["activities_removed"] == 1


def test_new_sell_contact_gets_earlier_chats(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    write_json(
        sell / "contacts_new.json",
        envelope("contact", [contact(40, "new.visitor@example.org", name="New V")]),
    )
    report = sync(store_url, chats, sell).report
    assert report["inputs"]["chats_rematched"] == 2
    assert rows(store_url, "SELECT chat_id FROM activities WHERE record_id = 40 ORDER BY 1") == [
        ("c7",),
        ("c8",),
    ]
    assert rows(store_url, "SELECT count(*) FROM rematch_queue") == [(0,)]
    again = sync(store_url, chats, sell, full=True).report
    assert again["writes"]["activities_inserted"] == 0


def test_unchanged_sell_export_is_not_rewritten(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    sync(store_url, chats, sell, full=True)
    assert rows(store_url, "SELECT DISTINCT imported_run_id FROM leads WHERE origin = 'sell'") == [
        (1,)
    ]


def test_filled_phone_survives_a_reimport_without_phone(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    engine = Store(store_url).engine
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE leads SET phone = '+81312345678' WHERE id = 1")
    engine.dispose()
    write_json(
        sell / "leads.json",
        envelope("lead", [lead(1, "a@example.com", updated_at="2026-11-01T00:00:00Z")]),
    )
    sync(store_url, chats, sell)
    assert rows(store_url, "SELECT phone, updated_at IS NOT NULL FROM leads WHERE id = 1") == [
        ("+81312345678", True)
    ]


def test_snapshot_is_complete_deletes_missing_records(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    settings = settings_for(store_url)
    settings.sell.snapshot_is_complete = True
    sync(store_url, chats, sell, settings=settings)
    write_json(sell / "leads.json", envelope("lead", [lead(1, "a@example.com")]))
    sync(store_url, chats, sell, settings=settings)
    assert rows(store_url, "SELECT id FROM leads ORDER BY id") == [(-1,), (1,)]


def test_rejects_are_recorded_with_position(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    ((source, position, kind, reason, raw),) = rows(
        store_url, "SELECT source_file, position, kind, reason, raw FROM rejects"
    )
    assert source.endswith("chats_more.jsonl") and position == "line 5" and kind == "chat"
    assert reason.startswith("invalid JSON") and raw.startswith('{"id": "c-broken"')


def test_batch_proposing_one_key_twice(store_url, tmp_path):
    """PostgreSQL refuses ON CONFLICT batches with a key twice; the writer dedupes first."""
    store = Store(store_url)
    store.prepare()
    frame = pd.DataFrame(
        {"agent_id": ["7", "7", "8"], "email": ["a@x.example", "b@x.example", "c@x.example"]}
    )
    with store.transaction() as conn:
        writers.apply_reference(
            conn, frame, pd.DataFrame(columns=["department_id", "name", "members"])
        )
    store.dispose()
    assert rows(store_url, "SELECT agent_id, email FROM agents ORDER BY 1") == [
        ("7", "b@x.example"),
        ("8", "c@x.example"),
    ]


def test_duplicate_chat_and_record_in_one_run(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    write_json(
        chats / "chats_dupe.json",
        page(
            [
                chat(
                    "c1",
                    "a@example.com",
                    start="2026-11-02T09:00:00Z",
                    updated="2026-11-02T09:10:00Z",
                    name="Ann Archer",
                )
            ]
        ),
    )
    write_json(sell / "leads_again.json", envelope("lead", [lead(1, "a@example.com")]))
    report = sync(store_url, chats, sell).report
    assert report["accounting"]["chats_read"] == 9
    assert rows(store_url, "SELECT count(*) FROM activities WHERE chat_id = 'c1'") == [(1,)]


def test_interrupted_run_resumes_to_the_same_state(store_url, tmp_path, monkeypatch):
    chats, sell = make_exports(tmp_path)
    settings = settings_for(store_url)
    settings.run.chunk_size = 2
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    reference = sync(
        reference_url, chats, sell, settings=settings_for(reference_url, run=settings.run)
    ).report

    # like SIGINT mid-run, on the third chunk: no failure is recorded, the run stays open
    undo = fail_write(monkeypatch, "write_outcomes", 3, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        sync(store_url, chats, sell, settings=settings)
    undo()
    assert rows(store_url, "SELECT run_id, status FROM runs") == [(1, "running")]
    resumed = sync(store_url, chats, sell, settings=settings).report
    assert resumed["run_id"] == 1
    for key in ("inputs", "outcomes", "accounting", "writes", "multi_match_emails", "rejects"):
        assert resumed[key] == reference[key], key
    assert dump(store_url, drop_run_columns=True) == dump(reference_url, drop_run_columns=True)


def test_failed_run_is_recorded_and_next_run_starts_fresh(store_url, tmp_path, monkeypatch):
    chats, sell = make_exports(tmp_path)

    fail_write(monkeypatch, "write_outcomes", 1, RuntimeError("disk on fire"))
    with pytest.raises(RuntimeError):
        sync(store_url, chats, sell)
    monkeypatch.undo()
    assert rows(store_url, "SELECT status, error FROM runs") == [
        ("failed", "RuntimeError: disk on fire")
    ]
    report = sync(store_url, chats, sell).report
    assert report["run_id"] == 2 and report["accounting"]["chats_read"] == 9


def test_dry_run_writes_nothing(store_url, tmp_path):
    chats, sell = make_exports(tmp_path)
    store = Store(store_url)
    store.prepare()
    store.dispose()
    before = dump(store_url, include_history=True)
    report = sync(store_url, chats, sell, dry_run=True).report
    assert dump(store_url, include_history=True) == before
    assert report["mode"] == "dry-run" and report["run_id"] is None
    assert report["accounting"]["balanced"] and report["outcomes"]["matched"] == 4
    assert report["writes"]["activities_inserted"] == 9 and report["writes"]["leads_created"] == 1
    real = sync(store_url, chats, sell).report
    assert real["outcomes"] == report["outcomes"] and real["writes"] == report["writes"]


def test_sell_record_in_two_files_is_written_once_as_its_newest_version(store_url, tmp_path):
    """The Sell snapshot is staged file by file and only its index columns are held: the full
    row written must still be the newest version's, whichever file holds it, and only once."""
    chats, _sell = make_exports(tmp_path)
    sell = tmp_path / "sell_split"
    newer = lead(7, "split@example.com", title="CTO", address={"city": "Osaka"},
                 updated_at="2026-10-05T00:00:00Z", owner_id=101)  # fmt: skip
    older = lead(7, "split@example.com", title="Intern", address={"city": "Kyoto"},
                 updated_at="2026-10-01T00:00:00Z", owner_id=102)  # fmt: skip
    # the older version comes first: the row written must be chosen by version, not file order
    write_json(sell / "leads_1.json", envelope("lead", [older, lead(8, "eight@example.com")]))
    write_json(sell / "leads_2.json", envelope("lead", [newer, lead(9, "nine@example.com")]))
    write_json(sell / "contacts_1.json", envelope("contact", [contact(40, "c40@example.com")]))
    report = sync(store_url, chats, sell).report
    assert report["inputs"]["sell_records"]["leads"] == 3
    assert rows(
        store_url,
        "SELECT id, owner_id, title, address FROM leads WHERE origin = 'sell' ORDER BY id",
    ) == [
        (7, 101, "CTO", '{"city":"Osaka"}'),
        (8, 101, None, None),
        (9, 101, None, None),
    ]
    again = sync(store_url, chats, sell, full=True).report
    assert again["inputs"]["sell_records"]["leads"] == 3
    assert rows(store_url, "SELECT count(*) FROM leads WHERE imported_run_id > 1") == [(0,)]


def test_a_transcript_is_stored_once_and_read_back_where_a_chat_is_planned_again(
    store_url, tmp_path
):
    """A chat with an activity keeps its transcript there only; a rematch (a new contact) and a
    re-read of an older version (the stored one is planned) still carry the whole transcript."""
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    held = "SELECT chat_id, transcript FROM chats WHERE chat_id IN ('c1', 'c5', 'c7') ORDER BY 1"
    stored = dict(rows(store_url, held))
    assert stored["c1"] is None and stored["c7"] is None  # on their activities
    assert stored["c5"]  # no email, no activity: on the chat row
    [(c7_transcript,)] = rows(
        store_url, "SELECT transcript FROM activities WHERE chat_id = 'c7' AND record_type = 'lead'"
    )
    assert c7_transcript

    write_json(
        sell / "contacts_new.json",
        envelope("contact", [contact(40, "new.visitor@example.org", name="New V")]),
    )
    assert sync(store_url, chats, sell).report["inputs"]["chats_rematched"] == 2
    assert rows(
        store_url, "SELECT transcript FROM activities WHERE chat_id = 'c7' AND record_id = 40"
    ) == [(c7_transcript,)]

    old, new = _versions(tmp_path)
    write_json(chats / "chats_page8.json", page([new]))
    sync(store_url, chats, sell)
    [(c1_transcript,)] = rows(store_url, "SELECT transcript FROM activities WHERE chat_id = 'c1'")
    write_json(chats / "chats_page9.json", page([old]))
    report = sync(store_url, chats, sell).report  # the stored newer version is planned again
    assert report["writes"]["activities_updated"] == 0
    assert rows(store_url, "SELECT transcript, tags FROM activities WHERE chat_id = 'c1'") == [
        (c1_transcript, '["new"]')
    ]
