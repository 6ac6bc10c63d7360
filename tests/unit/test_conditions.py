"""The alert conditions on hand-made runs (newest first), without a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from etl.config import AlertSettings
from etl.monitor.alerts import transitions
from etl.monitor.conditions import RunRecord, evaluate

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _run(run_id, mode="sync", status="succeeded", hours_ago=1.0, read=100, rejects=0,
         invalid=0, push_failed=None):  # fmt: skip
    report = {"accounting": {"chats_read": read}, "rejects": rejects,
              "outcomes": {"invalid_email": invalid}}  # fmt: skip
    if push_failed is not None:
        report = {"push": {"failed": push_failed}}
    ended = NOW - timedelta(hours=hours_ago)
    return RunRecord(run_id, mode, status, ended - timedelta(minutes=1), ended, report)


def _by_name(runs, **settings):
    return {c.name: c for c in evaluate(runs, AlertSettings(**settings), NOW)}


def test_failure_is_the_last_finished_runs():
    assert _by_name([_run(2, status="failed"), _run(1)])["run_failed"].firing
    assert not _by_name([_run(2), _run(1, status="failed")])["run_failed"].firing
    running = RunRecord(3, "sync", "running", NOW, None, {})
    assert _by_name([running, _run(2, status="failed")])["run_failed"].firing
    before = evaluate([_run(1)], AlertSettings(), NOW, failure="the sync failed before it started")
    assert {c.name: c for c in before}["run_failed"].firing


def test_shares_are_of_the_last_run_that_read_chats():
    runs = [_run(3, read=0), _run(2, read=200, rejects=5, invalid=12), _run(1, read=10, rejects=9)]
    found = _by_name(runs, rejects_pct=2.0, invalid_email_pct=5.0)
    assert found["rejects_pct"].firing and found["rejects_pct"].figure == 2.5
    assert found["rejects_pct"].run_id == 2
    assert found["invalid_email_pct"].firing and found["invalid_email_pct"].figure == 6.0
    quiet = _by_name(runs, rejects_pct=2.5, invalid_email_pct=False)
    assert not quiet["rejects_pct"].firing and "invalid_email_pct" not in quiet


def test_volume_against_the_median_of_the_seven_syncs_before():
    earlier = [
        _run(n, read=r)
        for n, r in zip(range(9, 1, -1), [100, 90, 110, 100, 95, 105, 100, 1], strict=True)
    ]
    assert not _by_name([_run(10, read=120), *earlier])["volume_change_pct"].firing  # 20%
    dropped = _by_name([_run(10, read=0), *earlier])["volume_change_pct"]
    assert dropped.firing and dropped.figure == 100.0  # a sync that read nothing
    assert _by_name([_run(10, read=400), *earlier])["volume_change_pct"].figure == 300.0
    backfills_do_not_count = [_run(10, read=400), _run(9, mode="backfill", read=1)]
    assert _by_name(backfills_do_not_count)["volume_change_pct"].figure is None


def test_staleness_of_the_last_successful_sync():
    stale = _by_name([_run(2, status="failed", hours_ago=0.1), _run(1, hours_ago=30)])
    assert stale["stale_hours"].firing and round(stale["stale_hours"].figure) == 30
    assert not _by_name([_run(1, hours_ago=25)])["stale_hours"].firing
    assert _by_name([])["stale_hours"].firing  # never synced


def test_push_failed_is_the_last_push_runs():
    failed = {"lead": 1, "activity": 3, "note": 0}  # by kind, as a push's report has them
    runs = [_run(3), _run(2, mode="push", push_failed=failed), _run(1, mode="push", push_failed=0)]
    assert _by_name(runs)["push_failed"].firing and _by_name(runs)["push_failed"].figure == 4
    assert not _by_name([_run(4, mode="push", push_failed=0), *runs])["push_failed"].firing
    assert not _by_name([_run(1)])["push_failed"].firing  # no push yet


def test_a_message_only_on_a_change_of_state():
    firing = evaluate([_run(1, rejects=50)], AlertSettings(), NOW)
    first = transitions(firing, {})
    assert [(t.condition.name, t.firing) for t in first] == [("rejects_pct", True)]
    stored = {t.condition.name: {"firing": t.firing} for t in first}
    assert transitions(firing, stored) == []  # still firing: nothing
    calm = evaluate([_run(2), _run(1, rejects=50)], AlertSettings(), NOW)
    assert [(t.condition.name, t.firing) for t in transitions(calm, stored)] == [
        ("rejects_pct", False)
    ]
