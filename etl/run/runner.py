"""A sync, start to end, as a sequence of stages over an explicit state (``RunState``):

1. the Sell snapshot (``etl.run.sell``): read, diffed, checked against the configuration;
2. the chat intake (``etl.run.intake``): the chat files parsed into a stage (``etl.contracts.Stage``);
3. planning and apply, chunk by chunk (``etl.run.chunks``; a Dask backfill: ``etl.run.dask``);
4. finish (``etl.run.finish``): the report, committed with the files it loaded.

The stages are ``etl.run.stages``. A sync of the same exports again, with nothing to resume or
rematch, is an unchanged sync (``etl.run.unchanged``): it records its run and report as the
stages would, without them (nor the frame libraries, the planner, a writer process).

Every commit also records the progress it covers: the Sell snapshot with its file marks; each
batch of chats with its outcomes, leads, pool pointers and the run's counters; the run's end with
the chat files it loaded. A run killed at any point is resumed by the next run with the same
inputs, which skips the chats already accounted for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from etl.config import Settings
from etl.errors import ConfigError
from etl.load.store import Store
from etl.monitor import Watch
from etl.run import unchanged
from etl.run.files import changed, discover_files
from etl.run.options import Progress, RunResult, SyncOptions, _no_progress
from etl.run.privacy import retain
from etl.run.state import RunState
from etl.stage.scratch import remove_orphans

log = logging.getLogger("chatsell.pipeline")


def run_sync(
    settings: Settings,
    options: SyncOptions,
    *,
    store: Store | None = None,
    now: datetime | None = None,
    progress: Progress = _no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunResult:
    """Read the exports, plan, apply (unless a dry run) and report. One run under the store lock.

    ``should_stop`` is asked between chunks (a scheduler's SIGTERM): the run then stops after
    the chunk it is in has committed, and the next run with the same inputs finishes it.
    """
    own_store = store is None
    store = store or Store(settings.database_url.get_secret_value())
    try:
        _check_engine(options, store)
        store.prepare()
        chat_files = discover_files(options.chats, "--chats")
        sell_files = discover_files(options.sell, "--sell")
        with store.lock() as holder:
            state = RunState(
                settings, options, store, now or datetime.now(UTC), progress, should_stop
            )
            if options.dry_run:  # not a run of the job: nothing to tell monitoring
                return _execute(state, holder, chat_files, sell_files)
            watch = Watch(settings, store, state.mode, options.report_dir)
            watch.started()
            try:
                result = _execute(state, holder, chat_files, sell_files)
                # [retention] once the run's writes are in (what it just wrote included)
                retain(settings, store, state.now, keep_run=result.run_id)
            except BaseException as exc:
                watch.ended(state.run_id, exc)
                raise
            watch.ended(result.run_id, None)
            return result
    finally:
        if own_store:
            store.dispose()


def _check_engine(options: SyncOptions, store: Store) -> None:
    if options.engine == "local":
        return
    if options.engine != "dask" or not options.backfill:
        raise ConfigError(f"engine {options.engine!r}: only backfill runs on --engine dask")
    if store.embedded:
        raise ConfigError(
            "--engine dask needs a shared PostgreSQL store (database_url); an SQLite file is for "
            "one process: use --engine local"
        )
    if options.dry_run:
        raise ConfigError("--engine dask writes as it goes: run --dry-run with --engine local")


def _execute(state: RunState, holder: dict[str, object], chat_files, sell_files) -> RunResult:
    """The files the run reads; then an unchanged sync, or the stages."""
    orphans = remove_orphans()
    if orphans:
        log.info(
            "removed %d scratch directories of killed runs", len(orphans),
            extra={"event": "scratch_removed", "paths": [str(p) for p in orphans]},
        )  # fmt: skip
    options, store = state.options, state.store
    known = store.source_files()
    # a backfill reads every chat file and takes its window from them; sync reads what is new
    chat_todo = changed(chat_files, known, "chat", reread=options.full or options.backfill)
    force_sell = options.full or state.settings.sell.snapshot_is_complete
    sell_todo = changed(sell_files, known, "sell", reread=force_sell)
    if unchanged.applies(state, chat_todo, sell_todo):
        return unchanged.run(state, holder)
    from etl.run import stages  # noqa: PLC0415 - the frame libraries, the planner, the writers

    result = stages.execute(state, holder, chat_todo, sell_todo)
    if not state.dry_run:  # its configuration passed the checks against these Sell users
        unchanged.remember_checked(state)
    return result
