"""``chatsell push`` against a local fake Sell (tests/fakesell.py) that enforces 10 requests a
second and misbehaves as Sell does: every row once, whatever the faults, and nothing twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fakesell import FakeSell
from pydantic import SecretStr

from etl.config import (
    AlertSettings,
    MetricsSettings,
    PushSettings,
    ScheduledPush,
    ScheduleSettings,
    load_settings,
)
from etl.load.store import Store
from etl.pacing import RetryPolicy
from etl.push.http import HttpOptions
from etl.push.runner import PushOptions, run_push
from etl.push.sell import SellDestination
from etl.readside import read_feed

from builders import envelope, lead, write_json
from integration.scenario import sync
from integration.test_monitoring import Receiver
from storecheck import rows


@pytest.fixture
def sell():
    with FakeSell() as fake:
        yield fake


def _quick(fake: FakeSell, settings: PushSettings | None = None) -> SellDestination:
    """The Sell destination with short backoffs (the waits are the same code, only shorter)."""
    settings = settings or PushSettings()
    options = HttpOptions(
        rate_per_second=settings.rate_per_second,
        max_attempts=settings.max_attempts,
        timeout=2.0,
        retry=RetryPolicy(backoff_base=0.05, backoff_cap=0.2),
    )
    return SellDestination(fake.base_url, fake.token, settings, options)


def _push(url: str, fake: FakeSell, **options):
    destination = _quick(fake)
    store = Store(url)
    try:
        return run_push(_settings(url), PushOptions(**options), store=store,
                        destination=destination)  # fmt: skip
    finally:
        destination.close()
        store.dispose()


ROOT = Path(__file__).resolve().parents[2]


def _settings(url: str):
    """The shipped example's configuration (pools, notify tags, phones) on this store."""
    return load_settings(ROOT / "config" / "chatsell.example.toml", database_url=url)


def _synced(url: str, fake: FakeSell) -> None:
    """The shipped examples synced, and Sell holding the records their snapshot had."""
    sync(url, ROOT / "examples" / "chat", ROOT / "examples" / "sell", settings=_settings(url))
    for record_id, email, phone in rows(url, "SELECT id, email, phone FROM contacts"):
        fake.add_contact(id=int(record_id), email=email, phone=phone, last_name="C")
    for (record_id,) in rows(url, "SELECT id FROM deals"):
        fake.add_deal(id=int(record_id), name="D")
    for record_id, email, phone in rows(
        url, "SELECT id, email, phone FROM leads WHERE origin = 'sell'"
    ):
        fake.add_lead(id=int(record_id), email=email, phone=phone, last_name="L")
    for record_type, record_id, old in rows(
        url,
        "SELECT record_type, record_id, old_value FROM field_changes WHERE field = 'phone' "
        "AND record_id > 0",
    ):  # Sell holds the phone as it was before the sync changed it in the store
        edit = fake.update_contact if record_type == "contact" else fake.update_lead
        edit(int(record_id), phone=old)


def _outbox(url: str) -> dict[str, int]:
    return dict(rows(url, "SELECT kind, count(*) FROM sell_outbox GROUP BY kind"))


def _assert_sell_holds_each_row_once(url: str, fake: FakeSell) -> None:
    assert rows(url, "SELECT status, count(*) FROM sell_outbox WHERE status <> 'sent' "
                "AND status <> 'skipped' GROUP BY status") == []  # fmt: skip
    leads = rows(url, "SELECT email_normalized, sell_id FROM leads WHERE origin = 'chat'")
    assert leads and all(sell_id is not None for _e, sell_id in leads)
    for email, sell_id in leads:
        [held] = [lead for lead in fake.leads.values() if (lead["email"] or "").lower() == email]
        assert held["id"] == sell_id
    first_lines = [n["content"].split("\n", 1)[0] for n in fake.notes]
    keys = [(n["resource_type"], n["resource_id"], line)
            for n, line in zip(fake.notes, first_lines, strict=True)]  # fmt: skip
    assert len(keys) == len(set(keys)), "a note twice"
    activities = rows(url, "SELECT chat_id, record_type, record_id FROM activities")
    notes = rows(url, "SELECT chat_id, record_type, record_id FROM notes WHERE kind = 'chat_notes'")
    assert len(fake.notes) == len(activities) + len(notes)
    tasks = rows(url, "SELECT chat_id, user_id FROM notifications")
    assert len(fake.tasks) == len(tasks)
    held = sorted((t["content"].split("\n", 1)[0].removeprefix("Zendesk Chat "), t["owner_id"])
                  for t in fake.tasks)  # fmt: skip
    assert held == sorted((chat_id, int(user_id)) for chat_id, user_id in tasks)  # to its owner


def test_every_row_reaches_sell_once_and_a_second_push_sends_nothing(store_url, tmp_path, sell):
    _synced(store_url, sell)
    kinds = _outbox(store_url)
    assert kinds["lead"] and kinds["activity"] and kinds["note"] and kinds["notification"]
    result = _push(store_url, sell)
    assert result.failed == 0
    sent = result.report["push"]["sent"]
    assert sent["lead"] == kinds["lead"] and sent["activity"] == kinds["activity"]
    _assert_sell_holds_each_row_once(store_url, sell)
    assert sell.max_requests_in_any_second(include_rejected=True) <= 10

    before = len(sell.requests)
    again = _push(store_url, sell)
    assert len(sell.requests) == before  # nothing sent
    assert sum(again.report["push"]["sent"].values()) == 0
    assert rows(store_url, "SELECT mode, status FROM runs WHERE mode = 'push'") == [
        ("push", "succeeded"), ("push", "succeeded")
    ]  # fmt: skip


def test_a_lead_created_from_a_chat_waits_nothing_of_its_own(store_url, tmp_path, sell):
    """Rows about a lead chatsell created go to Sell against the lead's Sell id."""
    _synced(store_url, sell)
    _push(store_url, sell)
    for lead_id, sell_id in rows(store_url, "SELECT id, sell_id FROM leads WHERE origin = 'chat'"):
        chats = rows(store_url, f"SELECT count(*) FROM activities WHERE record_type = 'lead' "  # noqa: S608
                     f"AND record_id = {int(lead_id)}")[0][0]  # fmt: skip
        assert len(sell.notes_of("lead", sell_id)) >= chats


def test_faults_of_every_kind_duplicate_nothing(store_url, tmp_path, sell):
    _synced(store_url, sell)
    sell.fail_next("429", path_prefix="/v2/notes")
    sell.fail_next("429-empty", path_prefix="/v2/leads")
    sell.fail_next("500", times=2, path_prefix="/v2/tasks")
    sell.fail_next("drop-after-write", path_prefix="/v2/notes", method="POST")
    sell.fail_next("drop-after-write", path_prefix="/v2/tasks", method="POST")
    sell.fail_next("drop-after-write", path_prefix="/v2/leads/upsert")
    sell.fail_next("drop-before-write", path_prefix="/v2/notes", method="POST")
    result = _push(store_url, sell)
    assert result.failed == 0 and sell.pending_faults == []
    push = result.report["push"]
    assert push["rate_limited"] >= 2 and push["retries"] >= 4
    _assert_sell_holds_each_row_once(store_url, sell)


def test_a_refusal_fails_its_row_only_and_retry_failed_sends_it(store_url, tmp_path, sell):
    _synced(store_url, sell)
    sell.fail_next("422", path_prefix="/v2/tasks", message="owner_id: not a user")
    result = _push(store_url, sell)
    assert result.failed == 1 and result.report["push"]["failed"]["notification"] == 1
    [(error,)] = rows(store_url, "SELECT last_error FROM sell_outbox WHERE status = 'failed'")
    assert "owner_id: not a user" in error
    sent = result.report["push"]["sent"]
    created = [v for v in sell.leads.values() if v["id"] >= 90001]
    assert sum(sent.values()) - sent["phone"] == len(sell.notes) + len(sell.tasks) + len(created)
    again = _push(store_url, sell)
    assert again.failed == 0 and sum(again.report["push"]["sent"].values()) == 0  # not retried
    retried = _push(store_url, sell, retry_failed=True)
    assert retried.report["push"]["sent"]["notification"] == 1
    _assert_sell_holds_each_row_once(store_url, sell)


def test_a_phone_is_changed_only_where_sell_still_holds_the_old_value(store_url, tmp_path, sell):
    _synced(store_url, sell)
    changes = rows(store_url, "SELECT record_type, record_id, old_value, new_value "
                   "FROM field_changes WHERE field = 'phone' AND record_id > 0")  # fmt: skip
    if not changes:
        pytest.skip("the scenario changes no phone of a Sell record")
    record_type, record_id, old, new = changes[0]
    collection = sell.contacts if record_type == "contact" else sell.leads
    assert (collection[int(record_id)]["phone"] or None) == (old or None)
    edit = sell.update_contact if record_type == "contact" else sell.update_lead
    edit(int(record_id), phone="+1 555 0000 999")  # someone changed it in Sell since
    result = _push(store_url, sell)
    assert result.report["push"]["skipped"]["phone"] == 1
    now = sell.contacts if record_type == "contact" else sell.leads  # (copies: read anew)
    assert now[int(record_id)]["phone"] == "+1 555 0000 999"
    [(reason,)] = rows(store_url, "SELECT last_error FROM sell_outbox WHERE kind = 'phone'")
    assert reason == "changed in Sell" and new


def test_a_dry_run_lists_the_requests_and_sends_nothing(store_url, tmp_path, sell):
    _synced(store_url, sell)
    said: list[dict] = []
    destination = _quick(sell)
    store = Store(store_url)
    try:
        result = run_push(_settings(store_url), PushOptions(dry_run=True), store=store,
                          destination=destination, emit=said.append)  # fmt: skip
    finally:
        destination.close()
        store.dispose()
    assert sell.requests == [] and result.run_id is None
    assert {r["method"] for r in said} <= {"POST", "GET", "PUT"}
    assert any(r["path"].startswith("/v2/leads/upsert?email=") for r in said)
    assert rows(store_url, "SELECT DISTINCT status FROM sell_outbox") == [("pending",)]


_PUSH = """
import sys
from etl.config import load_settings
from etl.push.runner import PushOptions, run_push
settings = load_settings(sys.argv[3], database_url=sys.argv[1])
run_push(settings, PushOptions(base_url=sys.argv[2]))
"""


def test_kill_9_mid_request_then_push_again_duplicates_nothing(store_url, tmp_path, sell):
    """The request reaches Sell, which writes and then holds its answer; the push is killed."""
    _synced(store_url, sell)
    for path in ("/v2/leads/upsert", "/v2/notes", "/v2/tasks"):  # (the leads go first)
        sell.fail_next("slow", path_prefix=path, method="POST", seconds=30)
        env = {**os.environ, "CHATSELL_SELL_TOKEN": sell.token}
        config = str(ROOT / "config" / "chatsell.example.toml")
        pushing = subprocess.Popen([sys.executable, "-c", _PUSH, store_url, sell.base_url, config], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while sell.pending_faults and time.monotonic() < deadline:
            time.sleep(0.05)  # until the slow request arrived (and was written)
        assert not sell.pending_faults, pushing.communicate(timeout=5)
        time.sleep(0.2)
        os.kill(pushing.pid, signal.SIGKILL)
        pushing.communicate(timeout=10)
        sell.clear_faults()
        assert rows(store_url, "SELECT count(*) FROM sell_outbox WHERE status = 'sending'") == [
            (1,)
        ]
    result = _push(store_url, sell)
    assert result.failed == 0
    _assert_sell_holds_each_row_once(store_url, sell)


def test_the_token_is_in_no_output(store_url, tmp_path, sell):
    _synced(store_url, sell)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSELL_")}
    env.update(CHATSELL_DATABASE_URL=store_url, CHATSELL_SELL_TOKEN=sell.token)
    config = str(ROOT / "config" / "chatsell.example.toml")
    command = [sys.executable, "-m", "etl", "-vv", "--config", config, "push", "--json", "--base-url", sell.base_url,
               "--limit", "5"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sell.token not in done.stdout + done.stderr
    assert json.loads(done.stdout)["push"]["requests"] >= 5
    wrong = {**env, "CHATSELL_SELL_TOKEN": "wrong-" + sell.token}
    refused = subprocess.run(command, capture_output=True, text=True, env=wrong, timeout=120)
    assert refused.returncode == 3  # every row refused (401), each failed, none lost
    assert sell.token not in refused.stdout + refused.stderr


def test_the_next_snapshot_holding_a_pushed_lead_is_that_same_lead(store_url, tmp_path, sell):
    """Confirmation: the lead comes back in a Sell export under its Sell id; the store keeps one
    lead for the email (the chat-created one, its activities found by either id) and pushes
    nothing again."""
    _synced(store_url, sell)
    _push(store_url, sell)
    pushed = rows(store_url, "SELECT id, sell_id, email_normalized FROM leads "
                  "WHERE origin = 'chat' ORDER BY id")  # fmt: skip
    snapshot = tmp_path / "sell"
    shutil.copytree(ROOT / "examples" / "sell", snapshot)
    back = [
        lead(int(sell_id), email, updated_at="2026-12-01T00:00:00Z")
        for _i, sell_id, email in pushed
    ]
    write_json(snapshot / "leads_from_sell.json", envelope("lead", back))
    leads_before = rows(store_url, "SELECT count(*) FROM leads")
    report = sync(store_url, ROOT / "examples" / "chat", snapshot, settings=_settings(store_url),
                  full=True).report  # fmt: skip
    assert report["inputs"]["leads_confirmed"] == len(pushed)
    assert rows(store_url, "SELECT count(*) FROM leads") == leads_before  # one lead an email
    assert rows(store_url, "SELECT id, sell_id, email_normalized FROM leads WHERE origin = 'chat' "
                "ORDER BY id") == pushed  # fmt: skip
    assert report["outcomes"]["lead_created"] == 0
    lead_id, sell_id, _email = pushed[0]
    settings = _settings(store_url)
    by_sell = read_feed(settings, f"lead:{sell_id}")
    by_ours = read_feed(settings, f"lead:{lead_id}")
    assert by_sell.records == [("lead", lead_id)] and len(by_sell.items) == len(by_ours.items) > 0
    before = len(sell.requests)
    again = _push(store_url, sell)
    assert sum(again.report["push"]["sent"].values()) == 0 and len(sell.requests) == before


def test_a_dry_run_sync_adds_nothing_to_the_outbox(store_url):
    report = sync(store_url, ROOT / "examples" / "chat", ROOT / "examples" / "sell",
                  settings=_settings(store_url), dry_run=True).report  # fmt: skip
    assert report["writes"]["leads_created"] > 0  # it would create leads...
    assert rows(store_url, "SELECT count(*) FROM sell_outbox") == [(0,)]  # ...and adds no row


def test_sync_push_on_the_command_line(store_url, tmp_path, sell):
    """``sync --push``: the sync commits, then a push of its own; exit 0 when no row failed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSELL_")}
    env.update(CHATSELL_DATABASE_URL=store_url, CHATSELL_SELL_TOKEN=sell.token,
               CHATSELL_SELL__BASE_URL=sell.base_url)  # fmt: skip
    probe = f"sqlite:///{tmp_path / 'probe.db'}"  # Sell holds what the export holds
    upgraded = Store(probe)
    upgraded.upgrade()
    upgraded.dispose()  # no SQLite connection of ours open across the run's fork (see the note)
    _synced(probe, sell)
    command = [sys.executable, "-m", "etl", "--config", str(ROOT / "config" / "chatsell.example.toml"),
               "sync", "--chats", str(ROOT / "examples" / "chat"), "--sell",
               str(ROOT / "examples" / "sell"), "--push", "--json"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert sell.token not in done.stdout + done.stderr
    assert rows(store_url, "SELECT mode, status FROM runs ORDER BY run_id") == [
        ("sync", "succeeded"), ("push", "succeeded")
    ]  # fmt: skip
    [(leads,)] = rows(store_url, "SELECT count(*) FROM leads WHERE sell_id IS NOT NULL")
    assert leads == 14 and len([v for v in sell.leads.values() if v["id"] >= 90001]) == 14
    assert rows(store_url, "SELECT DISTINCT status FROM sell_outbox") == [("sent",)]
    assert done.returncode == 0, done.stderr


def test_a_push_with_failed_rows_alerts_once_and_its_metrics_say_so(store_url, tmp_path, sell):
    """The push is a run like the others for monitoring: push_failed fires, the metrics file
    counts the outbox."""
    _synced(store_url, sell)
    hook = Receiver()
    metrics = tmp_path / "chatsell.prom"
    settings = _settings(store_url).model_copy(update={
        "alerts": AlertSettings(urls=[f"json://127.0.0.1:{hook.port}/hook"], rejects_pct=False,
                                invalid_email_pct=False, volume_change_pct=False,
                                stale_hours=False),
        "metrics": MetricsSettings(textfile=str(metrics)),
    })  # fmt: skip
    sell.fail_next("422", path_prefix="/v2/tasks", message="owner_id: not a user")
    destination = _quick(sell)
    store = Store(store_url)
    try:
        result = run_push(settings, PushOptions(), store=store, destination=destination)
        assert result.failed == 1
        [fired] = hook.messages()
        assert "push_failed" in fired["title"] and f"run {result.run_id} (push)" in fired["message"]
        text = metrics.read_text()
        assert "chatsell_push_failed 1.0" in text and "chatsell_push_pending 0.0" in text
        assert 'chatsell_last_run_timestamp_seconds{mode="push",status="succeeded"}' in text
        retried = run_push(settings, PushOptions(retry_failed=True), store=store,
                           destination=destination)  # fmt: skip
        assert retried.failed == 0
        [_fired, recovered] = hook.messages()
        assert "RECOVERED" in recovered["title"] and "push_failed" in recovered["title"]
        assert "chatsell_push_failed 0.0" in metrics.read_text()
    finally:
        destination.close()
        store.dispose()
        hook.close()


def test_a_scheduled_push_job(store_url, sell):
    from jobs.scheduler import configured_jobs, push_job

    _synced(store_url, sell)
    settings = _settings(store_url).model_copy(update={
        "sell": _settings(store_url).sell.model_copy(update={"base_url": sell.base_url,
                                                              "token": SecretStr(sell.token)}),
        "schedule": ScheduleSettings(push=ScheduledPush(cron="*/5 * * * *", limit=10)),
    })  # fmt: skip
    assert [name for name, _cron, _call in configured_jobs(settings, threading.Event())] == ["push"]
    assert push_job(settings) is True
    assert rows(store_url, "SELECT count(*) FROM sell_outbox WHERE status = 'sent'") == [(10,)]
    assert rows(store_url, "SELECT mode, status FROM runs WHERE mode = 'push'") == [
        ("push", "succeeded")
    ]
