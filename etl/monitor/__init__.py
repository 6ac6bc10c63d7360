"""Monitoring: what an operator hears after every run without opening a report.

``Watch`` is handed a run's start and end by the runner: it pings the dead man's switch
(``ping``), evaluates the alert conditions against the store (``conditions``) and sends a
message on a change of state (``alerts``), and writes the Prometheus text file (``metrics``).
``chatsell health`` asks the same conditions (``check``). Nothing here ever fails a run: a
failure of its own is logged and the run's result stands.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from etl.config import Settings
from etl.load.store import Store
from etl.monitor import alerts, metrics, ping
from etl.monitor.conditions import Condition, RunRecord, evaluate
from etl.monitor.secrets import redact

log = logging.getLogger("chatsell.monitor")

HISTORY = 50  # the runs read to evaluate the conditions (the last 7 syncs are among them)


def check(settings: Settings, store: Store, now: datetime | None = None) -> list[Condition]:
    """The alert conditions as the store stands (``chatsell health``); nothing is changed."""
    runs = [RunRecord.of(row) for row in store.recent_runs(HISTORY)]
    return evaluate(runs, settings.alerts, now or datetime.now(UTC))


class Watch:
    """One run's monitoring: ``started`` once it holds the lock, ``ended`` however it ends."""

    def __init__(self, settings: Settings, store: Store, mode: str, report_dir: Path | None):
        self.settings, self.store, self.mode, self.report_dir = settings, store, mode, report_dir
        redact([*settings.alerts.url_values(), settings.healthcheck.url_value()])

    def started(self) -> None:
        ping.ping(self.settings.healthcheck.url_value(), "start")

    def ended(self, run_id: int | None, error: BaseException | None) -> None:
        """After the run: its ping, the alerts, the metrics. ``error``: why it failed (None when
        it succeeded); a stopped run (SIGTERM) pings nothing: it is resumed by the next."""
        from etl.errors import RunStopped  # noqa: PLC0415

        url = self.settings.healthcheck.url_value()
        failure = None
        if error is None:
            ping.ping(url, "success", f"run {run_id} succeeded")
        elif not isinstance(error, RunStopped | KeyboardInterrupt):
            ping.ping(url, "fail", f"run {run_id} failed: {type(error).__name__}")
            if run_id is None:  # it failed before it had a row: the store does not say so
                failure = f"the {self.mode} failed before it started: {_first_line(error)}"
        if not self.settings.alerts.url_values() and self.settings.metrics.textfile is None:
            return  # nothing to alert or to write: the store is not read
        try:
            runs = [RunRecord.of(row) for row in self.store.recent_runs(HISTORY)]
        except Exception as exc:  # noqa: BLE001 - the store that failed the run may fail here
            log.warning("monitoring could not read the store: %s", type(exc).__name__)
            return
        self._alert(run_id, runs, failure)
        self._metrics(runs)

    def _alert(self, run_id: int | None, runs: list[RunRecord], failure: str | None) -> None:
        settings = self.settings.alerts
        urls = settings.url_values()
        if not urls:
            return
        try:
            alerts.quiet_apprise()
            now = datetime.now(UTC)
            conditions = evaluate(runs, settings, now, failure)
            state = self.store.alert_states()
            deliver = alerts.apprise_deliver(urls)
            rows = []
            for name, row in state.items():  # messages a failed delivery left, oldest first
                if row.get("pending") and deliver(f"chatsell: {name}", row["pending"]):
                    rows.append({**row, "pending": None})
            report = self._report_file(run_id)
            for t in alerts.transitions(conditions, state):
                body = alerts.message(t, run_id, self.mode, report)
                sent = deliver(t.title(), body)
                log.info("alert %s %s", t.condition.name, "firing" if t.firing else "recovered",
                         extra={"event": "alert", "condition": t.condition.name,
                                "firing": t.firing, "delivered": sent, "run_id": run_id})  # fmt: skip
                rows.append(alerts.now_row(t, None if sent else body, run_id, now))
            if rows:
                self.store.save_alert_states(rows)
        except Exception as exc:  # noqa: BLE001 - an alert never fails the run
            log.warning("alerts failed: %s: %s", type(exc).__name__, exc,
                        extra={"event": "alerts_failed"})  # fmt: skip

    def _metrics(self, runs: list[RunRecord]) -> None:
        path = self.settings.metrics.textfile
        if path is None:
            return
        try:
            metrics.write_textfile(Path(path), runs, self.store.push_counts())
        except Exception as exc:  # noqa: BLE001 - metrics never fail the run
            log.warning("metrics file not written: %s: %s", type(exc).__name__, exc,
                        extra={"event": "metrics_failed"})  # fmt: skip

    def _report_file(self, run_id: int | None) -> Path | None:
        if self.report_dir is None or run_id is None:
            return None
        page = self.report_dir / f"run-{run_id}.html"
        return page if page.exists() else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__
