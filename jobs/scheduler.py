"""``chatsell schedule``: the jobs of ``[schedule]`` on an APScheduler 3 BlockingScheduler.

Wiring only. Each job calls the same pipeline function the CLI calls. Jobs coalesce, never run
twice at once (``max_instances=1``), and a job that could not start on time still runs within
``misfire_grace_time``. A scheduled sync and a cron-started ``chatsell sync`` share the store
lock, so they never overlap: the second one is skipped with a log line. SIGTERM or SIGINT
stops the scheduler; a sync in progress stops after the chunk it is in has committed and the
next sync with the same inputs resumes it.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from apscheduler.events import EVENT_SCHEDULER_START
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from etl.config import Settings
from etl.errors import ChatsellError, LockHeld, RunStopped
from etl.readside import publish_report
from etl.run import SyncOptions, run_sync

log = logging.getLogger("chatsell.schedule")


def sync_job(settings: Settings, stop: threading.Event) -> bool:
    """One scheduled sync; True when it ran to the end (or another run held the lock)."""
    job = settings.schedule.sync
    assert job is not None
    options = SyncOptions(
        chats=Path(job.chats),
        sell=Path(job.sell),
        full=job.full,
        report_dir=Path(job.report_dir) if job.report_dir else None,
    )
    try:
        result = run_sync(settings, options, should_stop=stop.is_set)
    except LockHeld as exc:
        log.warning("scheduled sync skipped: %s", exc, extra={"event": "sync_skipped"})
        return True
    except RunStopped:
        return False
    except ChatsellError as exc:
        log.error("scheduled sync failed: %s", exc, extra={"event": "sync_failed"})
        return False
    log.info("scheduled sync done", extra={"event": "sync_done", "run_id": result.run_id})
    return True


def pull_job(settings: Settings) -> bool:
    """Pull the Chat and/or Sell exports into the directories ``[schedule.pull]`` names."""
    from etl.load.store import Store
    from etl.pull import pull_chat, pull_sell

    job = settings.schedule.pull
    assert job is not None
    targets = [(pull_chat, job.chat_out), (pull_sell, job.sell_out)]
    with Store(settings.database_url.get_secret_value()) as store:
        for fetch, out in targets:
            if out is None:
                continue
            try:
                result = fetch(settings, store, Path(out))
            except ChatsellError as exc:
                log.error("scheduled pull failed: %s", exc, extra={"event": "pull_failed"})
                return False
            log.info("scheduled pull done: %s", result.summary(), extra={"event": "pull_done"})
    return True


def push_job(settings: Settings) -> bool:
    """One scheduled push of the Sell outbox; True when no row failed (or the lock was held)."""
    from etl.push.runner import PushOptions, run_push

    job = settings.schedule.push
    assert job is not None
    try:
        result = run_push(settings, PushOptions(limit=job.limit))
    except LockHeld as exc:
        log.warning("scheduled push skipped: %s", exc, extra={"event": "push_skipped"})
        return True
    except ChatsellError as exc:
        log.error("scheduled push failed: %s", exc, extra={"event": "push_failed"})
        return False
    log.info("scheduled push done", extra={"event": "push_done", "run_id": result.run_id,
                                           "failed": result.failed})  # fmt: skip
    return result.failed == 0


def report_job(settings: Settings) -> bool:
    """Write the latest run's HTML and JSON report into ``[schedule.report] out``."""
    job = settings.schedule.report
    assert job is not None
    try:
        written = publish_report(settings, "latest", Path(job.out))
    except ChatsellError as exc:
        log.error("scheduled report failed: %s", exc, extra={"event": "report_failed"})
        return False
    log.info(
        "scheduled report written",
        extra={"event": "report_done", "files": [str(p) for p in written]},
    )
    return True


def configured_jobs(settings: Settings, stop: threading.Event) -> list[tuple[str, str, object]]:
    """(name, cron expression, callable) for every job in ``[schedule]``."""
    jobs = []
    if settings.schedule.pull is not None:
        jobs.append(("pull", settings.schedule.pull.cron, lambda: pull_job(settings)))
    if settings.schedule.sync is not None:
        jobs.append(("sync", settings.schedule.sync.cron, lambda: sync_job(settings, stop)))
    if settings.schedule.push is not None:
        jobs.append(("push", settings.schedule.push.cron, lambda: push_job(settings)))
    if settings.schedule.report is not None:
        jobs.append(("report", settings.schedule.report.cron, lambda: report_job(settings)))
    return jobs


def run_once(settings: Settings) -> bool:
    """Run each configured job once, now (pull, sync, push, then report); True when all
    succeeded."""
    stop = threading.Event()
    results = [call() for _name, _cron, call in configured_jobs(settings, stop)]
    return all(results)


def build_scheduler(settings: Settings, stop: threading.Event) -> BlockingScheduler:
    schedule = settings.schedule
    scheduler = BlockingScheduler(
        timezone=schedule.timezone,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": schedule.misfire_grace_time,
        },
    )
    for name, cron, call in configured_jobs(settings, stop):
        scheduler.add_job(
            call, CronTrigger.from_crontab(cron, timezone=schedule.timezone), id=name, name=name
        )
    return scheduler


def run_forever(settings: Settings) -> None:
    """Block running the jobs until SIGTERM or SIGINT; then stop cleanly."""
    stop = threading.Event()
    scheduler = build_scheduler(settings, stop)

    def shutdown(signum, _frame) -> None:
        log.info(
            "stopping on %s", signal.Signals(signum).name, extra={"event": "scheduler_stopping"}
        )
        stop.set()
        if scheduler.running:  # before start, the listener below stops it as soon as it runs
            scheduler.shutdown(wait=False)

    def started(_event) -> None:
        # logged once the scheduler runs: a SIGTERM after these lines always finds it running
        for job in scheduler.get_jobs():
            log.info(
                "job %s scheduled",
                job.name,
                extra={"event": "job_scheduled", "job": job.name, "trigger": str(job.trigger)},
            )
        if stop.is_set() and scheduler.running:
            scheduler.shutdown(wait=False)

    scheduler.add_listener(started, EVENT_SCHEDULER_START)
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    scheduler.start()
