"""Alerts, health, metrics and pings (SPEC 11), against a local HTTP server standing in for the
webhook (an Apprise ``json://`` URL) and the dead man's switch: fire once, keep firing quietly,
recover once; a dead webhook never fails a run and its message goes out after the next; the
metrics file says what the report says; no secret of a URL in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from etl.config import AlertSettings, HealthcheckSettings, MetricsSettings
from etl.errors import ConfigError
from etl.load.store import Store
from etl.monitor import check

from builders import chat, page, sell_dir, user, write_json, write_ndjson
from integration.scenario import settings_for, sync
from storecheck import rows

SECRET = "T0PS3CRET"


class Receiver:
    """A local HTTP server that records every request and answers with the statuses it is given
    (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(("POST", self.path, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST  # noqa: N815

            def log_message(self, *_args):
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def messages(self) -> list[dict]:
        return [json.loads(b) for m, p, b in self.requests if p.startswith("/hook")]

    def pings(self) -> list[str]:
        return [p for _m, p, _b in self.requests if p.startswith("/ping")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _exports(root: Path, batch: str, good: int, bad: int) -> tuple[Path, Path]:
    """One more chat file: ``good`` chats and ``bad`` lines that cannot be read (rejects)."""
    chats = root / "chat"
    chats.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(chat(f"{batch}-{n}", f"{batch}{n}@example.com", start="2026-11-02T09:00:00Z"))
        for n in range(good)
    ]
    write_ndjson(chats / f"{batch}.ndjson", [json.loads(line) for line in lines],
                 extra_lines=["{not json"] * bad)  # fmt: skip
    sell = root / "sell"
    if not sell.exists():
        sell_dir(sell, users=[user(101, "owner1@example.com")])
    return chats, sell


def _settings(url: str, receiver: Receiver, **alerts):
    config = {
        "urls": [f"json://127.0.0.1:{receiver.port}/hook/{SECRET}"],
        "on_failure": True,
        "rejects_pct": None,
        "invalid_email_pct": None,
        "volume_change_pct": None,
        "stale_hours": None,
        "push_failed": False,
        **alerts,
    }
    return settings_for(url, alerts=AlertSettings(**config))


def test_an_alert_fires_once_keeps_quiet_then_recovers_once(store_url, tmp_path, receiver):
    settings = _settings(store_url, receiver, rejects_pct=10.0)
    chats, sell = _exports(tmp_path, "a", good=8, bad=2)  # 2 of 10 set aside: 20%
    first = sync(store_url, chats, sell, settings=settings, report_dir=tmp_path / "reports")
    assert first.report["rejects"] == 2
    [fired] = receiver.messages()
    assert "FIRING" in fired["title"] and "rejects_pct" in fired["title"]
    body = fired["message"]
    assert "20%" in body and "threshold 10%" in body
    assert f"run {first.run_id} (sync)" in body
    assert str(tmp_path / "reports" / f"run-{first.run_id}.html") in body

    _exports(tmp_path, "b", good=3, bad=1)  # 25%: still firing, nothing said
    sync(store_url, chats, sell, settings=settings)
    sync(store_url, chats, sell, settings=settings)  # read nothing: the state stands
    assert len(receiver.messages()) == 1

    _exports(tmp_path, "c", good=20, bad=0)
    third = sync(store_url, chats, sell, settings=settings)
    assert len(receiver.messages()) == 2
    recovered = receiver.messages()[1]
    assert "RECOVERED" in recovered["title"] and "rejects_pct" in recovered["title"]
    assert f"run {third.run_id}" in recovered["message"]
    state = rows(store_url, "SELECT condition, firing, pending FROM alert_state")
    assert [(c, bool(f), p) for c, f, p in state] == [("rejects_pct", False, None)]


def test_a_dead_webhook_never_fails_the_run_and_is_sent_after_the_next(
    store_url, tmp_path, receiver
):
    settings = _settings(store_url, receiver, rejects_pct=10.0)
    chats, sell = _exports(tmp_path, "a", good=8, bad=2)
    receiver.statuses = [500, 500, 500, 500]  # Apprise may try more than once
    first = sync(store_url, chats, sell, settings=settings)
    assert first.report["status"] == "succeeded"
    assert receiver.messages()  # it was tried
    [(pending,)] = rows(store_url, "SELECT pending FROM alert_state")
    assert pending and "rejects_pct" in pending

    receiver.requests.clear()
    receiver.statuses = []
    sync(store_url, chats, sell, settings=settings)  # nothing new: the message goes out now
    [delivered] = receiver.messages()
    assert "rejects_pct" in delivered["title"] and f"run {first.run_id}" in delivered["message"]
    assert rows(store_url, "SELECT pending FROM alert_state") == [(None,)]

    receiver.requests.clear()
    sync(store_url, chats, sell, settings=settings)
    assert receiver.messages() == []  # once


def test_a_webhook_nobody_listens_on_fails_nothing(store_url, tmp_path, receiver, caplog):
    port = receiver.port
    receiver.close()  # nothing listens there now
    settings = settings_for(
        store_url,
        alerts=AlertSettings(urls=[f"json://127.0.0.1:{port}/hook/{SECRET}"], rejects_pct=1.0),
        healthcheck=HealthcheckSettings(url=f"http://127.0.0.1:{port}/ping/{SECRET}"),
    )
    chats, sell = _exports(tmp_path, "a", good=8, bad=2)
    caplog.set_level("DEBUG")
    report = sync(store_url, chats, sell, settings=settings).report
    assert report["status"] == "succeeded"
    said = caplog.text
    assert "alert delivery" in said and "healthcheck ping" in said
    assert SECRET not in said
    assert f"127.0.0.1:{port}" in said  # where, without the secret


def test_the_failure_condition_and_the_pings(store_url, tmp_path, receiver, caplog):
    ping_url = f"http://127.0.0.1:{receiver.port}/ping/{SECRET}"
    settings = _settings(store_url, receiver).model_copy(
        update={"healthcheck": HealthcheckSettings(url=ping_url)}
    )
    chats, sell = _exports(tmp_path, "a", good=3, bad=0)
    caplog.set_level("DEBUG")
    caplog.set_level("INFO", logger="httpx")  # as -vv shows it: every request's URL
    sync(store_url, chats, sell, settings=settings)
    assert receiver.pings() == [f"/ping/{SECRET}/start", f"/ping/{SECRET}"]
    assert "HTTP Request" in caplog.text and SECRET not in caplog.text
    assert receiver.messages() == []  # nothing fires on a good run

    broken = settings.model_copy(
        update={"sell": settings.sell.model_copy(update={"integration_user": "nobody@example.com"})}
    )
    receiver.requests.clear()
    with pytest.raises(ConfigError):
        sync(store_url, chats, sell, settings=broken, full=True)
    assert receiver.pings() == [f"/ping/{SECRET}/start", f"/ping/{SECRET}/fail"]
    [fired] = receiver.messages()
    assert "run_failed" in fired["title"] and "integration_user" in fired["message"]

    receiver.requests.clear()
    sync(store_url, chats, sell, settings=settings, full=True)
    [recovered] = receiver.messages()
    assert "RECOVERED" in recovered["title"] and "run_failed" in recovered["title"]


def test_health_says_what_fires_and_is_stale(store_url, tmp_path):
    alerts = AlertSettings(stale_hours=0.0001, rejects_pct=1.0, volume_change_pct=None)
    settings = settings_for(store_url, alerts=alerts)
    store = Store(store_url)
    try:
        never = {c.name: c for c in check(settings, store)}
        assert never["stale_hours"].firing and never["stale_hours"].figure is None
        chats, sell = _exports(tmp_path, "a", good=9, bad=1)
        sync(store_url, chats, sell, settings=settings)
        time.sleep(0.5)  # 0.0001 h is 0.36 s
        now = {c.name: c for c in check(settings, store)}
        assert now["stale_hours"].firing and now["stale_hours"].figure > 0.0001
        assert now["rejects_pct"].firing and now["rejects_pct"].figure == 10.0
        assert not now["run_failed"].firing and not now["invalid_email_pct"].firing
        relaxed = settings_for(store_url, alerts=AlertSettings(rejects_pct=50.0))
        assert not any(c.firing for c in check(relaxed, store))
        assert rows(store_url, "SELECT count(*) FROM alert_state") == [
            (0,)
        ]  # health changes nothing
    finally:
        store.dispose()


def test_the_volume_condition_compares_with_the_median_of_earlier_syncs(store_url, tmp_path):
    settings = settings_for(store_url, alerts=AlertSettings(volume_change_pct=50.0))
    store = Store(store_url)
    try:
        for batch, good in (("a", 10), ("b", 12), ("c", 10)):
            chats, sell = _exports(tmp_path, batch, good=good, bad=0)
            sync(store_url, chats, sell, settings=settings)
        volume = {c.name: c for c in check(settings, store)}["volume_change_pct"]
        assert not volume.firing and volume.figure == round(abs(10 - 11) * 100 / 11, 2)
        chats, sell = _exports(tmp_path, "d", good=40, bad=0)
        sync(store_url, chats, sell, settings=settings)
        volume = {c.name: c for c in check(settings, store)}["volume_change_pct"]
        assert volume.firing and volume.figure == 300.0  # 40 against the median 10
    finally:
        store.dispose()


def test_the_metrics_file_says_what_the_report_says(store_url, tmp_path):
    path = tmp_path / "metrics" / "chatsell.prom"
    settings = settings_for(store_url, metrics=MetricsSettings(textfile=str(path)))
    chats, sell = _exports(tmp_path, "a", good=7, bad=2)
    write_json(
        chats / "more.json", page([chat("x1", "not-an-email", start="2026-11-03T09:00:00Z")])
    )
    report = sync(store_url, chats, sell, settings=settings).report
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert found[("chatsell_chats_read", ())] == report["accounting"]["chats_read"] == 10
    assert found[("chatsell_rejects", ())] == report["rejects"] == 2
    for outcome, count in report["outcomes"].items():
        assert found[("chatsell_outcomes", (("outcome", outcome),))] == count
    assert found[("chatsell_outcomes", (("outcome", "invalid_email"),))] == 1
    [(pending,)] = rows(store_url, "SELECT count(*) FROM sell_outbox WHERE status = 'pending'")
    assert found[("chatsell_push_pending", ())] == pending > 0  # what the sync left for Sell
    assert found[("chatsell_push_failed", ())] == 0
    ran = found[
        ("chatsell_last_run_timestamp_seconds", (("mode", "sync"), ("status", "succeeded")))
    ]
    assert ran == found[("chatsell_last_success_timestamp_seconds", ())] > 0
    assert found[("chatsell_run_duration_seconds", (("mode", "sync"), ("status", "succeeded")))] > 0
    assert not list(path.parent.glob("*.tmp*"))  # written then renamed: nothing half written


def test_chatsell_health_on_the_command_line(store_url, tmp_path):
    """Exit 1 and the firing condition with its figure; --json says the same; 0 once healthy."""
    config = tmp_path / "chatsell.toml"
    config.write_text("[alerts]\nrejects_pct = 5.0\nvolume_change_pct = false\n")
    chats, sell = _exports(tmp_path, "a", good=9, bad=1)
    sync(store_url, chats, sell)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSELL_")}
    env["CHATSELL_DATABASE_URL"] = store_url
    command = [sys.executable, "-m", "etl", "--config", str(config), "health"]
    said = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert said.returncode == 1, said.stderr
    assert "FIRING rejects_pct" in said.stdout and "10% (threshold 5%)" in said.stdout
    assert "volume_change_pct" not in said.stdout  # turned off
    assert said.stdout.strip().splitlines()[-1] == "unhealthy: rejects_pct"
    as_json = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env,
                             timeout=120)  # fmt: skip
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and data["firing"] == ["rejects_pct"]
    [rejects] = [c for c in data["conditions"] if c["condition"] == "rejects_pct"]
    assert rejects["figure"] == 10.0 and rejects["threshold"] == 5.0

    config.write_text("[alerts]\nrejects_pct = 20.0\n")
    healthy = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.strip().splitlines()[-1] == "healthy"
