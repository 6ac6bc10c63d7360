"""An unchanged sync: the same exports again, so nothing to read and nothing to write but the
run's row and its report.

The stages (``etl.run.stages``) given no file to read come to that: the Sell snapshot counts no
record, the intake stages no chat, no chunk is planned, the agents and departments are written
back as they are, and the finish records a report of zeros, balanced. Run here, that costs a few
queries, without the frame libraries, the planner, a writer process or scratch space: a cron
job that finds nothing new ends in a fraction of a second.

It applies only where its outcome is certain to be the stages': a sync (not a backfill or a dry
run) that reads no file, with no interrupted run of these inputs to resume, no rematch queued,
and a configuration that passed a run's checks against the Sell users as the store holds them
(``remember_checked``: the stages check it against the Sell users before anything is written,
and a configuration error ends the run there). Anything else goes through the stages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime

from etl import __version__
from etl.errors import ChatsellError
from etl.report.build import build_report
from etl.run import finish
from etl.run.files import Todo
from etl.run.options import RunResult
from etl.run.state import RunState
from etl.vocab import SELL_RESOURCES

log = logging.getLogger("chatsell.pipeline")


def applies(state: RunState, chat_todo: Todo, sell_todo: Todo) -> bool:
    """Whether this run is an unchanged sync (see the module's docstring)."""
    options, store = state.options, state.store
    if chat_todo or sell_todo or options.mode != "sync" or options.dry_run:
        return False
    if options.engine != "local":
        return False
    latest = store.latest_run()
    if (  # the stages resume it (``Store.begin_run``, resume="interrupted")
        latest is not None
        and latest["status"] == "running"
        and latest["mode"] == state.mode
        and latest["input_key"] == options.input_key(state.mode)
    ):
        return False
    if store.rematch_queue():  # a failed run's rematch, left for the next run to do
        return False
    return store.config_checked() == config_fingerprint(state, store.sell_user_keys())


def run(state: RunState, holder: dict[str, object]) -> RunResult:
    """The run's row, its counters and its report, as the stages leave them for no file read."""
    store, options, counters = state.store, state.options, state.counters
    started = time.perf_counter()
    log.info(
        "sell read",
        extra={"event": "sell_read", "sell_files": 0,
               "seconds": round(time.perf_counter() - started, 2)},
    )  # fmt: skip
    state.run_id, _resumed = store.begin_run(
        state.mode, options.input_key(state.mode), options.recorded(), holder, resume="interrupted"
    )
    log.info(
        "run started",
        extra={"event": "run_started", "run_id": state.run_id, "mode": state.mode, "resumed": False,
               "store": store.display_url, "chat_files": 0, "sell_files": 0},
    )  # fmt: skip
    counters.inputs.sell_records = {name: 0 for name in SELL_RESOURCES if name != "notes"}
    counters.inputs.leads_confirmed = 0
    log.info("sell snapshot read", extra={"event": "sell_loaded", "run_id": state.run_id})
    staging = time.perf_counter()
    counters.inputs.chat_files = 0
    counters.inputs.chats_staged = 0
    counters.inputs.chat_rejects = 0
    counters.rejects = 0
    log.info(
        "chats staged",
        extra={"event": "chats_staged", "chat_files": 0,
               "seconds": round(time.perf_counter() - staging, 2)},
    )  # fmt: skip
    report = build_report(
        run_id=state.run_id, mode=state.mode, status="succeeded", started_at=state.now,
        finished_at=datetime.now(UTC), counters=counters, outcomes={}, multi_match_emails=0,
        removed_reasons={},
    )  # fmt: skip
    with store.transaction() as conn:
        finish.finish_run(conn, state.run_id, None, counters, report)
    log.info(
        "run finished",
        extra={"event": "run_finished", "run_id": state.run_id, "status": report["status"],
               "chats_read": 0, "balanced": True, "rejects": 0, **report["writes"]},
    )  # fmt: skip
    finish.write_files(state, report, None)
    return RunResult(state.run_id, report, report["warnings"])


def config_fingerprint(state: RunState, users: list[tuple]) -> str:
    """What a run's configuration checks depend on: the assignment rules and pools, the
    integration user, the Sell users (id, normalized email, status), and chatsell's version."""
    settings = state.settings
    material = {
        "version": __version__,
        "assignment": settings.assignment.model_dump(mode="json"),
        "integration_user": settings.sell.integration_user,
        "users": [[str(value) if value is not None else None for value in row] for row in users],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def remember_checked(state: RunState) -> None:
    """After a run of the stages: its configuration passed the checks against the Sell users
    the store now holds. Not remembered (a store error): the next unchanged sync runs the stages."""
    store = state.store
    try:
        store.remember_config_checked(config_fingerprint(state, store.sell_user_keys()))
    except ChatsellError as exc:
        log.debug("configuration check not remembered: %s", exc)
