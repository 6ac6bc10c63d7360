"""SPEC 10 on both stores: an erasure request (``chatsell forget``) and retention
(``[retention]``, ``chatsell prune``).

The erased person, Erin, exists only in chats: two chats (the first creates a lead, unpushed),
a note, a notification, a phone filled on that lead, and one line of an export no reader could parse. After the
erasure no text column of any table holds her email, her name or what she wrote, a ``--full``
re-read of the old exports brings none of it back (her chats are ``removed``, reason ``erasure
request``), and on SQLite the file's bytes hold no copy either.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from etl.cli import cli
from etl.load import schema
from etl.load.store import Store
from etl.run import SyncOptions, run_sync
from etl.run.privacy import forget, prune
from etl.stage.scratch import _owner

from builders import chat, lead, sell_dir, user, write_ndjson
from integration.scenario import settings_for, sync
from storecheck import dump, rows

EMAIL = "erin.erased@example.com"
NAME = "Erin Erased"
SECRET = "my passport number is X1234567"  # what she wrote
NOTE = "Erin prefers calls after six"  # what the agent wrote about her
PHONE = "+1 415 555 0142"
TRACES = (EMAIL, NAME, SECRET, NOTE, "555 0142")
# the Sell mirror: what Sell itself holds (a lead Sell has stays until it is erased there)
MIRROR = {"leads", "contacts", "deals", "users", "sell_notes", "lead_conversions"}


@pytest.fixture(autouse=True)
def _own_scratch(tmp_path, monkeypatch):
    """Scratch directories of this test's own (forget counts the ones killed runs left)."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


def _exports(tmp_path: Path) -> tuple[Path, Path]:
    sell = sell_dir(tmp_path / "sell", leads=[lead(1, "kim@example.com")],
                    users=[user(101, "owner1@example.com")])  # fmt: skip
    e1 = chat("e1", "Erin.Erased@Example.com", name=NAME, notes=NOTE,
              tags=["notify_sales"], messages=[(NAME, SECRET)], start="2026-11-02T09:00:00Z")  # fmt: skip
    e2 = chat("e2", EMAIL, name=NAME, phone=PHONE, messages=[(NAME, "hello again")],
              start="2026-11-04T09:00:00Z", end="2026-11-04T09:20:00Z")  # fmt: skip
    k1 = chat("k1", "kim@example.com", name="Kim Kept", messages=[("Kim Kept", "kept words")],
              start="2026-11-03T09:00:00Z")  # fmt: skip
    chats = tmp_path / "chat"
    bad = (
        '{"id": "e9", "visitor": {"email": "' + EMAIL + '", "name": "' + NAME + '"}, "timestamp": '
    )
    write_ndjson(chats / "chats.ndjson", [e1, k1, e2], extra_lines=[bad])
    return chats, sell


def _settings(url: str):
    """New leads go to user 101, so Erin's chat tagged for sales notifies their owner."""
    settings = settings_for(url)
    assignment = settings.assignment.model_copy(update={"default_owner": 101})
    return settings.model_copy(update={"assignment": assignment})


def _traces(url: str, outside: set[str] = MIRROR) -> list[tuple[str, str, str]]:
    """(table, column, trace) for every text column of every table, the mirror aside, that
    holds one of Erin's traces (case-insensitive)."""
    found = []
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for name, table in schema.metadata.tables.items():
                if name in outside:
                    continue
                for column in table.c:
                    if not isinstance(column.type, sa.Text):
                        continue
                    for trace in TRACES:
                        hit = conn.execute(
                            sa.select(sa.func.count()).where(
                                sa.func.lower(column).contains(trace.lower(), autoescape=True)
                            )
                        ).scalar()
                        if hit:
                            found.append((name, column.name, trace))
    finally:
        engine.dispose()
    return found


def _forget(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--db", url, "forget", *args], catch_exceptions=False)
    return result.exit_code, result.stdout


def test_forget_erases_every_trace_and_an_old_export_brings_none_back(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    first = sync(store_url, chats, sell, settings=_settings(store_url)).report
    assert first["outcomes"]["lead_created"] == 1 and first["outcomes"]["rejected"] == 1
    assert {t for _table, _column, t in _traces(store_url)} >= {EMAIL, NAME, SECRET, NOTE}

    code, out = _forget(store_url, "ERIN.ERASED@example.com ")
    assert code == 0, out
    lines = dict(line.split()[:2] for line in out.splitlines()[1:])
    assert "  chats                   2  rows deleted" in out
    assert "  rejects                 1  raw texts blanked" in out
    assert out.splitlines()[0] == "erased 1 email(s):"
    assert lines["chats"] == "2" and lines["leads"] == "1" and lines["activities"] == "2"
    assert lines["notes"] == "1" and lines["notifications"] == "1"
    assert lines["field_changes"] == "1" and lines["rejects"] == "1" and lines["erasures"] == "1"
    assert _traces(store_url) == []
    assert rows(store_url, "SELECT chat_id FROM chats") == [("k1",)]
    assert rows(store_url, "SELECT count(*) FROM leads WHERE origin = 'chat'") == [(0,)]
    assert rows(store_url, "SELECT chat_id, outcome, email_normalized FROM run_outcomes "
                "WHERE chat_id LIKE 'e%' ORDER BY 1") == [
        ("e1", "lead_created", None), ("e2", "matched_new_lead", None)]  # fmt: skip
    # only a keyed hash is kept: not the email's plain SHA-256 either
    [(hashed,)] = rows(store_url, "SELECT email_hash FROM erasures")
    assert len(hashed) == 64 and hashed != __import__("hashlib").sha256(EMAIL.encode()).hexdigest()
    # Kim's chat and activity are untouched
    assert rows(store_url, "SELECT chat_id, record_type, record_id FROM activities") == [
        ("k1", "lead", 1)
    ]

    # a --full re-read of the old exports: her chats are removed, no lead, nothing stored
    again = sync(store_url, chats, sell, settings=_settings(store_url), full=True).report
    assert again["outcomes"]["removed"] == 2 and again["outcomes"]["lead_created"] == 0
    assert again["removed_reasons"] == {"erasure request": 2}
    assert again["outcomes"]["rejected"] == 1 and again["outcomes"]["matched"] == 1
    assert again["accounting"] == {"chats_read": 4, "outcomes_total": 4, "balanced": True}
    assert again["writes"]["leads_created"] == 0 and again["writes"]["notes_created"] == 0
    assert rows(store_url, "SELECT chat_id, outcome, email_normalized, records, reason FROM "
                "run_outcomes WHERE run_id = 2 AND chat_id LIKE 'e%' ORDER BY 1") == [
        ("e1", "removed", None, None, "erasure request"),
        ("e2", "removed", None, None, "erasure request")]  # fmt: skip
    # the unreadable line is set aside again, where and why, but not what it held
    assert rows(store_url, "SELECT position, raw FROM rejects WHERE run_id = 2") == [
        ("line 4", None)
    ]
    assert _traces(store_url) == []
    assert rows(store_url, "SELECT chat_id FROM chats") == [("k1",)]
    assert rows(store_url, "SELECT count(*) FROM sell_outbox WHERE chat_id LIKE 'e%'") == [(0,)]

    # and so does an incremental sync of an export that arrives late (its newer versions)
    late = tmp_path / "chat" / "late.ndjson"
    e1_newer = chat("e1", EMAIL, name=NAME, messages=[(NAME, SECRET)],
                    start="2026-11-02T09:00:00Z", updated="2026-11-20T00:00:00Z")  # fmt: skip
    write_ndjson(late, [e1_newer])
    third = sync(store_url, chats, sell, settings=_settings(store_url)).report
    assert third["removed_reasons"] == {"erasure request": 1}
    assert _traces(store_url) == []


def test_forget_dry_run_counts_and_changes_nothing(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    sync(store_url, chats, sell, settings=_settings(store_url))
    before = dump(store_url, include_history=True)
    code, out = _forget(store_url, "--dry-run", "--json", EMAIL)
    assert code == 0, out
    dry = json.loads(out)
    assert dump(store_url, include_history=True) == before
    assert dry["dry_run"] is True and dry["emails"] == [EMAIL]
    code, out = _forget(store_url, "--json", EMAIL)
    done = json.loads(out)
    assert done["tables"] == dry["tables"] and done["tables"]["chats"] == 2
    assert done["pushed_leads"] == []
    # a second request for the same email finds nothing more
    code, out = _forget(store_url, "--json", EMAIL)
    assert {k: v for k, v in json.loads(out)["tables"].items() if k != "erasures"} == {
        k: 0 for k in done["tables"] if k != "erasures"
    }


def test_forget_removes_the_scratch_stage_a_killed_run_left(store_url, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = _owner().split(".")[0]
    left = tmp_path / "tmp" / f"chatsell-stage-{host}.{dead.pid}-abc123"
    left.mkdir()
    (left / "stage.db").write_text(SECRET)
    code, out = _forget(store_url, "--dry-run", "--json", EMAIL)
    assert json.loads(out)["tables"]["scratch_dirs"] == 1 and left.exists()
    code, out = _forget(store_url, "--json", EMAIL)
    assert json.loads(out)["tables"]["scratch_dirs"] == 1 and not left.exists()


def test_a_pushed_lead_is_listed_and_kept(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    sync(store_url, chats, sell, settings=_settings(store_url))
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:  # as `push` leaves a delivered lead
        conn.execute(sa.text("UPDATE leads SET sell_id = 90001 WHERE origin = 'chat'"))
        conn.execute(sa.text("UPDATE sell_outbox SET status = 'sent', sell_id = 90001 "
                             "WHERE kind = 'lead'"))  # fmt: skip
    engine.dispose()
    code, out = _forget(store_url, EMAIL)
    assert code == 0
    assert f"kept lead -1 (sell_id 90001, {EMAIL}): it is in Sell; erase it there" in out
    assert rows(store_url, "SELECT id, sell_id FROM leads WHERE origin = 'chat'") == [(-1, 90001)]
    # its delivery record stays, keyed by the hash, so it is never sent again
    [(key, status)] = rows(
        store_url, "SELECT dedupe_key, status FROM sell_outbox WHERE kind = 'lead'"
    )
    assert key.startswith("lead:erased:") and status == "sent"
    # the lead is Sell's record now; nothing else keeps her
    assert {table for table, _c, _t in _traces(store_url, MIRROR - {"leads"})} == {"leads"}
    assert _traces(store_url) == []


def test_a_chat_started_after_the_erasure_loads_as_a_new_conversation(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    sync(store_url, chats, sell, settings=_settings(store_url))
    store = Store(store_url)
    try:
        forget(settings_for(store_url), store, [EMAIL], now=datetime(2026, 11, 5, tzinfo=UTC))
    finally:
        store.dispose()
    write_ndjson(chats / "later.ndjson",
                 [chat("e3", EMAIL, name=NAME, start="2026-11-10T09:00:00Z")])  # fmt: skip
    report = sync(store_url, chats, sell, settings=_settings(store_url)).report
    assert report["outcomes"]["lead_created"] == 1 and report["outcomes"]["removed"] == 0
    assert rows(store_url, "SELECT chat_id FROM chats WHERE chat_id LIKE 'e%'") == [("e3",)]


def test_forget_waits_for_no_run_and_refuses_a_non_address(store_url, tmp_path):
    store = Store(store_url)
    try:
        with store.lock():
            code, _out = _forget(store_url, EMAIL)
            assert code == 75
    finally:
        store.dispose()
    assert rows(store_url, "SELECT count(*) FROM erasures") == [(0,)]
    result = CliRunner().invoke(cli, ["--db", store_url, "forget", "not-an-address"])
    assert result.exit_code == 2 and "not an email address" in result.stderr


def test_on_sqlite_the_file_keeps_no_copy(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    chats, sell = _exports(tmp_path)
    sync(url, chats, sell, settings=_settings(url))
    sync(
        url, chats, sell, settings=_settings(url), full=True
    )  # rows rewritten: older versions' bytes in free space

    def file_bytes() -> bytes:
        found = b""
        for path in tmp_path.glob("store.db*"):
            found += path.read_bytes()
        return found.lower()

    # as a store written before secure_delete leaves them: a deleted row's overflow pages,
    # free but not zeroed, with what Erin wrote
    old = sqlite3.connect(tmp_path / "store.db")
    old.execute("PRAGMA secure_delete = OFF")
    old.execute("INSERT INTO rejects (run_id, source_file, position, kind, reason, raw) "
                "VALUES (9, 'old.json', 'line 1', 'chat', 'old', ?)", (SECRET * 400,))  # fmt: skip
    old.commit()
    old.execute("DELETE FROM rejects WHERE run_id = 9")
    old.commit()
    old.close()
    assert SECRET.lower().encode() in file_bytes()
    code, out = _forget(url, EMAIL)
    assert code == 0, out
    held = file_bytes()
    for trace in TRACES:
        assert trace.lower().encode() not in held, trace
    assert b"kept words" in held  # the rest is there


# -- retention ------------------------------------------------------------------------------------


def _retention(url: str, transcripts: int | None = None, details: int | None = None):
    settings = _settings(url)
    return settings.model_copy(
        update={"retention": settings.retention.model_copy(
            update={"transcripts_days": transcripts, "run_details_days": details})}
    )  # fmt: skip


def _sync_at(url: str, settings, chats: Path, sell: Path, now: datetime, **options):
    store = Store(url)
    try:
        return run_sync(settings, SyncOptions(chats=chats, sell=sell, **options), store=store,
                        now=now).report  # fmt: skip
    finally:
        store.dispose()


def _texts(url: str) -> list[tuple]:
    return rows(url, "SELECT a.chat_id, a.transcript, a.message_count, a.agent_names "
                "FROM activities a ORDER BY 1")  # fmt: skip


def test_retention_blanks_old_transcripts_and_a_full_reread_keeps_them_blank(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    settings = _retention(store_url, transcripts=30)
    _sync_at(store_url, settings, chats, sell, datetime(2026, 11, 10, tzinfo=UTC))
    assert all(t for _c, t, _n, _a in _texts(store_url))  # 8 days old: kept
    [(note,)] = rows(store_url, "SELECT content FROM notes")
    assert NOTE in note
    outbox = rows(store_url, "SELECT count(*) FROM sell_outbox")

    # a month later: the next sync (nothing new) blanks them after it commits
    later = datetime(2026, 12, 20, tzinfo=UTC)
    _sync_at(store_url, settings, chats, sell, later)
    texts = _texts(store_url)
    assert [t for _c, t, _n, _a in texts] == ["", "", ""]
    assert all(n and a for _c, _t, n, a in texts)  # the metadata stays
    assert rows(store_url, "SELECT content FROM notes") == [("",)]
    assert rows(store_url, "SELECT count(*) FROM chats WHERE transcript <> '' "
                "OR visitor_notes <> ''") == [(0,)]  # fmt: skip
    for trace in (SECRET, NOTE, "kept words"):
        assert trace not in repr(dump(store_url))

    # a --full re-read of the same exports brings none back, and rewrites nothing
    report = _sync_at(store_url, settings, chats, sell, later, full=True)
    assert report["writes"]["activities_updated"] == 0
    assert report["writes"]["activities_unchanged"] == 3
    assert report["writes"]["notes_created"] == 0
    assert [t for _c, t, _n, _a in _texts(store_url)] == ["", "", ""]
    assert rows(store_url, "SELECT count(*) FROM sell_outbox") == outbox  # nothing for Sell
    for trace in (SECRET, NOTE, "kept words"):
        assert trace not in repr(dump(store_url))


def test_retention_keeps_an_old_export_from_ever_storing_its_transcripts(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    settings = _retention(store_url, transcripts=30)
    report = _sync_at(store_url, settings, chats, sell, datetime(2027, 3, 1, tzinfo=UTC))
    assert report["writes"]["activities_inserted"] == 3
    assert [t for _c, t, _n, _a in _texts(store_url)] == ["", "", ""]
    assert rows(store_url, "SELECT count(*) FROM notes") == [(0,)]  # no note without its text
    for trace in (SECRET, NOTE, "kept words"):
        assert trace not in repr(dump(store_url))


def test_prune_deletes_old_run_details_and_keeps_the_runs(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    sync(store_url, chats, sell, settings=_settings(store_url))
    settings = _retention(store_url, details=30)
    before = dump(store_url, include_history=True)
    store = Store(store_url)
    try:
        dry = prune(settings, store, dry_run=True, now=datetime(2027, 2, 1, tzinfo=UTC))
        assert dump(store_url, include_history=True) == before
        assert dry.tables == {"run_outcomes": 4, "rejects": 1}
        soon = prune(settings, store, now=datetime(2026, 12, 31, tzinfo=UTC))
        assert soon.tables == {"run_outcomes": 0, "rejects": 0}  # not 30 days old yet
        done = prune(settings, store, now=datetime(2027, 2, 1, tzinfo=UTC))
    finally:
        store.dispose()
    assert done.tables == dry.tables
    assert rows(store_url, "SELECT count(*) FROM run_outcomes") == [(0,)]
    assert rows(store_url, "SELECT count(*) FROM rejects") == [(0,)]
    assert rows(store_url, "SELECT run_id, status FROM runs") == [(1, "succeeded")]
    result = CliRunner().invoke(cli, ["--db", store_url, "report", "1", "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["outcomes"]["lead_created"] == 1


@pytest.mark.parametrize("dry", [True, False])
def test_prune_command(store_url, tmp_path, dry):
    chats, sell = _exports(tmp_path)
    sync(store_url, chats, sell, settings=_settings(store_url))
    runner = CliRunner()
    nothing = runner.invoke(cli, ["--db", store_url, "prune"])
    assert nothing.exit_code == 0 and "nothing to prune" in nothing.stdout
    env = {"CHATSELL_RETENTION__TRANSCRIPTS_DAYS": "1"}  # the chats ended weeks ago
    args = ["--db", store_url, "prune", "--json"] + (["--dry-run"] if dry else [])
    result = runner.invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pruned = json.loads(result.stdout)
    # (a chat with activities keeps its transcript on them; its row, the agent's note)
    assert pruned["tables"] == {"activities": 3, "chats": 1, "notes": 1}
    blank = rows(store_url, "SELECT count(*) FROM activities WHERE transcript = ''")
    assert blank == [(0,)] if dry else [(3,)]


def test_a_sync_applies_retention_once_a_day_and_prune_at_once(store_url, tmp_path):
    chats, sell = _exports(tmp_path)
    settings = _retention(store_url, transcripts=30)
    first = datetime(2026, 12, 20, tzinfo=UTC)
    _sync_at(store_url, settings, chats, sell, first)
    assert [t for _c, t, _n, _a in _texts(store_url)] == ["", "", ""]

    def put_back() -> None:  # as if a transcript had been written since
        engine = sa.create_engine(store_url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE activities SET transcript = 'again' WHERE chat_id = 'k1'"))
        engine.dispose()

    put_back()
    _sync_at(store_url, settings, chats, sell, first + timedelta(hours=20))
    assert rows(store_url, "SELECT transcript FROM activities WHERE chat_id = 'k1'") == [("again",)]
    _sync_at(store_url, settings, chats, sell, first + timedelta(hours=25))
    assert rows(store_url, "SELECT transcript FROM activities WHERE chat_id = 'k1'") == [("",)]
    put_back()
    store = Store(store_url)
    try:
        pruned = prune(settings, store, now=first + timedelta(hours=26))  # a command: now
    finally:
        store.dispose()
    assert pruned.tables["activities"] == 1
    assert rows(store_url, "SELECT transcript FROM activities WHERE chat_id = 'k1'") == [("",)]
