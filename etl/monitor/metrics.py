"""The Prometheus text file (``[metrics] textfile``), for node_exporter's textfile collector:
written after every run from the store's runs, replaced whole (written beside it, then renamed)."""

from __future__ import annotations

from pathlib import Path

from etl.monitor.conditions import RunRecord
from etl.vocab import OUTCOMES


def write_textfile(path: Path, runs: list[RunRecord], push: dict[str, int]) -> None:
    """``runs``: the store's recent runs, newest first; ``push``: pending and failed outbox rows."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile  # noqa: PLC0415

    registry = CollectorRegistry()
    last_run = Gauge("chatsell_last_run_timestamp_seconds",
                     "When the last run of this mode ended with this status (Unix time)",
                     ["mode", "status"], registry=registry)  # fmt: skip
    last_success = Gauge("chatsell_last_success_timestamp_seconds",
                         "When the last successful sync or backfill ended (Unix time)",
                         registry=registry)  # fmt: skip
    duration = Gauge("chatsell_run_duration_seconds", "How long the last run took",
                     ["mode", "status"], registry=registry)  # fmt: skip
    chats_read = Gauge("chatsell_chats_read", "Chats the last sync or backfill read",
                       registry=registry)  # fmt: skip
    outcomes = Gauge("chatsell_outcomes", "Chats of the last sync or backfill by outcome",
                     ["outcome"], registry=registry)  # fmt: skip
    rejects = Gauge("chatsell_rejects", "Records the last sync or backfill set aside",
                    registry=registry)  # fmt: skip
    pending = Gauge("chatsell_push_pending", "Outbox rows not yet in Sell", registry=registry)
    failed = Gauge("chatsell_push_failed", "Outbox rows that failed", registry=registry)

    finished = [r for r in runs if r.status != "running"]
    seen: set[tuple[str, str]] = set()
    for run in finished:  # newest first: the first of each (mode, status) is its last
        key = (run.mode, run.status)
        if key in seen:
            continue
        seen.add(key)
        ended = run.finished_at or run.started_at
        if ended is not None:
            last_run.labels(*key).set(ended.timestamp())
        if run.finished_at is not None and run.started_at is not None:
            duration.labels(*key).set((run.finished_at - run.started_at).total_seconds())
    loads = [r for r in finished if r.mode in ("sync", "backfill") and r.status == "succeeded"]
    if loads:
        latest = loads[0]
        if latest.finished_at is not None:
            last_success.set(latest.finished_at.timestamp())
        chats_read.set(latest.chats_read)
        counts = latest.report.get("outcomes", {})
        for name in OUTCOMES:
            outcomes.labels(name).set(int(counts.get(name, 0) or 0))
        rejects.set(int(latest.report.get("rejects", 0) or 0))
    pending.set(push.get("pending", 0))
    failed.set(push.get("failed", 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)  # writes a temporary file, then renames it
