"""SPEC 10 on both stores: a chat Zendesk sends with ``"deleted": true`` is removed with
everything derived from them, in one transaction, and accounted for as ``removed``."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner

from etl.cli import cli

from builders import chat, contact, lead, page, sell_dir, user, write_json
from integration.scenario import sync
from storecheck import dump, rows

SECRET = "my account number is 4711-0815"  # what the visitor wrote
NOTE = "wants a call back on Monday"  # what the agent wrote
# the chat row's columns that hold what the visitor or the agents wrote, names or contacts
CONTENT = ("visitor_id", "visitor_name", "visitor_email", "visitor_phone", "visitor_notes",
           "rating", "comment", "country_code", "transcript", "content_hash", "email_normalized")  # fmt: skip


def _chats(deleted: bool, updated: str) -> list[dict]:
    """d1 matches lead 1 (an activity, a note, a notification, a phone filled), d2 creates a
    lead, k1 matches lead 1 and stays."""
    d1 = chat("d1", "dora@example.com", name="Dora Deleted", phone="+1 415 555 0100",
              notes=NOTE, tags=["notify_sales"], rating="good", messages=[("Dora", SECRET)],
              start="2026-11-02T09:00:00Z", updated=updated, deleted=deleted)  # fmt: skip
    d1["comment"] = "great help"
    d2 = chat("d2", "new.person@example.org", name="Nora New", start="2026-11-02T10:00:00Z",
              updated=updated, deleted=deleted)  # fmt: skip
    k1 = chat("k1", "dora@example.com", name="Dora Deleted", start="2026-11-01T09:00:00Z")
    return [d1, d2] if deleted else [d1, d2, k1]


def _exports(tmp_path):
    sell = sell_dir(tmp_path / "sell", leads=[lead(1, "dora@example.com")],
                    users=[user(101, "owner1@example.com")])  # fmt: skip
    chats = tmp_path / "chat"
    write_json(chats / "old.json", page(_chats(False, "2026-11-02T12:00:00Z")))
    return chats, sell


def _delete(chats) -> None:
    """A later export: d1 and d2 deleted at source (a newer update time, the content as it was)."""
    write_json(chats / "deleted.json", page(_chats(True, "2026-11-05T08:00:00Z")))


def _no_content_left(url: str, chat_ids: tuple[str, ...]) -> None:
    """Nothing derived from these chats is left but their rows, and those hold no content."""
    columns = ", ".join(("deleted", "tags", "agent_ids", "agent_names", *CONTENT))
    for chat_id in chat_ids:
        for table in ("activities", "notes", "notifications"):
            found = rows(url, f"SELECT count(*) FROM {table} WHERE chat_id = :c", c=chat_id)  # noqa: S608
            assert found == [(0,)], (table, chat_id)
        # unsent outbox rows about them go too (a lead stays, and so does a record's phone)
        assert rows(url, "SELECT count(*) FROM sell_outbox WHERE chat_id = :c "
                    "AND kind NOT IN ('lead', 'phone')", c=chat_id) == [(0,)]  # fmt: skip
        [stored] = rows(url, f"SELECT {columns} FROM chats WHERE chat_id = :c", c=chat_id)  # noqa: S608
        deleted, tags, agent_ids, agent_names, *content = stored
        assert deleted in (True, 1), chat_id
        assert (tags, agent_ids, agent_names) == ("[]", "[]", "[]"), chat_id
        assert not any(content), (chat_id, content)
    everything = repr(dump(url, include_history=True))
    assert SECRET not in everything and NOTE not in everything and "great help" not in everything


def test_a_chat_deleted_at_source_is_removed_with_everything_derived_from_it(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    first = sync(store_url, chats, sell).report
    assert first["outcomes"]["matched"] == 2 and first["outcomes"]["lead_created"] == 1
    assert first["writes"]["notes_created"] == 1 and first["writes"]["notifications_created"] == 1
    assert rows(store_url, "SELECT count(*) FROM activities WHERE chat_id IN ('d1', 'd2')") == [
        (2,)
    ]
    [(pending,)] = rows(store_url, "SELECT count(*) FROM sell_outbox WHERE chat_id = 'd1'")
    assert pending == 4  # activity, note, notification, the phone filled on lead 1

    _delete(chats)
    dry = sync(store_url, chats, sell, dry_run=True).report
    report = sync(store_url, chats, sell).report
    assert report["outcomes"] == {
        "matched": 0, "lead_created": 0, "matched_new_lead": 0, "lead_skipped": 0,
        "no_email": 0, "invalid_email": 0, "rejected": 0, "removed": 2,
    }  # fmt: skip
    assert report["removed_reasons"] == {"deleted at source": 2}
    assert report["accounting"] == {"chats_read": 2, "outcomes_total": 2, "balanced": True}
    assert report["writes"]["activities_removed"] == 2
    assert dry["outcomes"] == report["outcomes"] and dry["writes"] == report["writes"]
    assert dry["removed_reasons"] == report["removed_reasons"]
    assert rows(
        store_url,
        "SELECT chat_id, outcome, email_normalized, records, reason, match_count, agent "
        "FROM run_outcomes WHERE run_id = 2 ORDER BY chat_id",
    ) == [
        ("d1", "removed", None, None, "deleted at source", 0, None),
        ("d2", "removed", None, None, "deleted at source", 0, None),
    ]
    _no_content_left(store_url, ("d1", "d2"))
    # the deleted version is the one kept, and the chat that was not deleted keeps everything
    assert rows(store_url, "SELECT version FROM chats WHERE chat_id = 'd1'")[0][0].startswith(
        "2026-11-05T08:00:00"
    )
    assert rows(store_url, "SELECT record_type, record_id FROM activities WHERE chat_id = 'k1'"
                ) == [("lead", 1)]  # fmt: skip
    # the lead d2 created stays a CRM record, with its origin, and so does its outbox row
    assert rows(store_url, "SELECT id, email_normalized, origin, origin_chat_id FROM leads "
                "WHERE origin = 'chat'") == [(-1, "new.person@example.org", "chat", "d2")]  # fmt: skip
    assert rows(store_url, "SELECT kind, dedupe_key FROM sell_outbox WHERE chat_id = 'd2'") == [
        ("lead", "lead:new.person@example.org")
    ]

    # a record the email gains later attaches the chats still stored, not the removed ones
    sell_dir(tmp_path / "sell", leads=[lead(1, "dora@example.com")],
             contacts=[contact(40, "dora@example.com")], users=[user(101, "owner1@example.com")])  # fmt: skip
    again = sync(store_url, chats, sell).report
    assert again["inputs"]["chats_rematched"] == 1
    assert rows(store_url, "SELECT chat_id, record_type, record_id FROM activities "
                "ORDER BY 1, 2") == [("k1", "contact", 40), ("k1", "lead", 1)]  # fmt: skip
    _no_content_left(store_url, ("d1", "d2"))


def test_a_full_reread_of_the_old_export_brings_nothing_back(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    sync(store_url, chats, sell)
    _delete(chats)
    sync(store_url, chats, sell)
    before = dump(store_url)
    (chats / "deleted.json").unlink()  # only the export from before the deletion
    report = sync(store_url, chats, sell, full=True).report
    assert report["outcomes"]["removed"] == 2 and report["outcomes"]["matched"] == 1
    assert report["removed_reasons"] == {"deleted at source": 2}
    assert report["accounting"]["balanced"] and report["accounting"]["chats_read"] == 3
    assert report["writes"] == {
        "activities_inserted": 0,
        "activities_updated": 0,
        "activities_unchanged": 1,  # k1's, the same
        "activities_removed": 0,
        "leads_created": 0,
        "notes_created": 0,
        "notifications_created": 0,
        "phone_updates": 0,
    }
    assert dump(store_url) == before
    _no_content_left(store_url, ("d1", "d2"))


def test_a_chat_deleted_in_its_first_appearance_is_stored_removed(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    (chats / "old.json").unlink()
    kept = chat("k1", "dora@example.com", name="Dora Deleted", start="2026-11-01T09:00:00Z")
    gone = chat("d3", "never.seen@example.org", name="Gina Gone", phone="+1 415 555 0199",
                notes="Gina's private note", messages=[("Gina", SECRET)],
                start="2026-11-03T09:00:00Z", deleted=True)  # fmt: skip
    write_json(chats / "export.json", page([kept, gone]))
    report = sync(store_url, chats, sell).report
    assert report["outcomes"]["removed"] == 1 and report["outcomes"]["matched"] == 1
    assert report["accounting"] == {"chats_read": 2, "outcomes_total": 2, "balanced": True}
    assert report["writes"]["leads_created"] == 0  # an unmatched email, but no lead from it
    assert rows(store_url, "SELECT count(*) FROM leads WHERE origin = 'chat'") == [(0,)]
    assert rows(store_url, "SELECT count(*) FROM field_changes") == [(0,)]
    assert rows(store_url, "SELECT outcome, email_normalized, reason FROM run_outcomes "
                "WHERE chat_id = 'd3'") == [("removed", None, "deleted at source")]  # fmt: skip
    _no_content_left(store_url, ("d3",))
    everything = repr(dump(store_url, include_history=True))
    for trace in ("Gina", "never.seen", "555 0199"):
        assert trace not in everything, trace
    assert rows(store_url, "SELECT chat_id FROM activities") == [("k1",)]


def test_the_report_shows_removed_with_its_reasons(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    sync(store_url, chats, sell)
    _delete(chats)
    sync(store_url, chats, sell)
    runner = CliRunner()

    def report(*args: str) -> str:
        result = runner.invoke(cli, ["--db", store_url, "report", "2", *args],
                               catch_exceptions=False)  # fmt: skip
        assert result.exit_code == 0, result.output
        return result.stdout

    text = report()
    assert "removed" in text and "deleted at source" in text and "balanced" in text
    as_json = json.loads(report("--format", "json"))
    assert as_json["outcomes"]["removed"] == 2
    assert as_json["removed_reasons"] == {"deleted at source": 2}
    summary = list(csv.reader(io.StringIO(report("--format", "csv"))))
    assert ["outcomes", "removed", "2"] in summary
    assert ["removed_reasons", "deleted at source", "2"] in summary
    details = list(csv.DictReader(io.StringIO(report("--details", "--format", "csv"))))
    assert details == [
        {"chat_id": c, "outcome": "removed", "email_normalized": "", "records": "",
         "reason": "deleted at source"}
        for c in ("d1", "d2")
    ]  # fmt: skip
    as_rows = json.loads(report("--details", "--format", "json"))
    assert {r["chat_id"]: (r["outcome"], r["email_normalized"], r["reason"]) for r in as_rows} == {
        c: ("removed", None, "deleted at source") for c in ("d1", "d2")
    }
    page_html = report("--format", "html")
    assert 'id="removed-chats"' in page_html
    assert 'Removed chats <span class="count">2</span>' in page_html
    assert "<code>d1</code>" in page_html and page_html.count("deleted at source") >= 3
