"""A sync, start to end, as a sequence of stages over an explicit state (``RunState``):

1. the Sell snapshot (``etl.run.sell``): read, diffed, checked against the configuration;
2. the chat intake (``etl.run.intake``): the chat files parsed into a stage (``etl.contracts.Stage``);
3. planning and apply, chunk by chunk (``etl.run.chunks``; a Dask backfill: ``etl.run.dask``);
4. finish (``etl.run.finish``): the report, committed with the files it loaded.

Every write goes through the run's sink (``etl.contracts.Sink``): this process's, a writer
process's, or a dry run's, which writes nothing. Every commit also records the progress it
covers: the Sell snapshot with its file marks; each batch of chats with its outcomes, leads,
pool pointers and the run's counters; the run's end with the chat files it loaded. A run killed
at any point is resumed by the next run with the same inputs, which skips the chats already
accounted for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from etl.config import Settings
from etl.contracts import Sink
from etl.errors import ChatsellError, ConfigError, RunStopped
from etl.extract.files import SourceFile
from etl.load.sinks import InlineSink, ProcessSink
from etl.load.store import Store
from etl.monitor import Watch
from etl.procs import release_memory, worker_pool
from etl.run import dask, finish, intake
from etl.run.chunks import Chunks
from etl.run.dry import DrySink
from etl.run.files import changed, discover_files
from etl.run.options import Progress, RunResult, SyncOptions, _no_progress
from etl.run.planning import LazyPlanner, build_planner, configure
from etl.run.privacy import retain
from etl.run.sell import read_sell, send_sell, users_of
from etl.run.state import RunState
from etl.stage.chats import ChatStage
from etl.stage.scratch import remove_orphans
from etl.stage.sell import SellStage
from etl.vocab import RunCounters

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


def _execute(
    state: RunState,
    holder: dict[str, object],
    chat_files: list[SourceFile],
    sell_files: list[SourceFile],
) -> RunResult:
    orphans = remove_orphans()
    if orphans:
        log.info(
            "removed %d scratch directories of killed runs", len(orphans),
            extra={"event": "scratch_removed", "paths": [str(p) for p in orphans]},
        )  # fmt: skip
    with contextlib.ExitStack() as resources:  # what the run started ends with it, however
        sell_stage = resources.enter_context(SellStage())
        if state.options.engine == "dask":
            engine = resources.enter_context(
                dask.DaskEngine.start(state.options.dask_scheduler, state.options.dask_workers)
            )
        else:
            engine = LocalEngine(resources.enter_context(ChatStage()))
        return _Sync(state, holder, engine, sell_stage, resources).run(chat_files, sell_files)


class LocalEngine:
    """Chats staged in this machine's scratch file, planned and applied by this process."""

    def __init__(self, stage: ChatStage) -> None:
        self.stage = stage

    def stage_chats(self, state: RunState, todo, pool) -> intake.Intake:
        return intake.stage_chats(state, self.stage, todo, pool)

    def process(self, chunks: Chunks, stage, resumed: bool) -> None:
        chunks.process(stage, resumed)


class _Sync:
    """The run's stages, in order; ``run`` is the sequence."""

    def __init__(self, state, holder, engine, sell_stage: SellStage, resources) -> None:
        self.state, self.holder, self.engine = state, holder, engine
        self.sell_stage, self.resources = sell_stage, resources

    def run(self, chat_files: list[SourceFile], sell_files: list[SourceFile]) -> RunResult:
        state, store, options = self.state, self.state.store, self.state.options
        known = store.source_files()
        # a backfill reads every chat file and takes its window from them; sync reads what is new
        chat_todo = changed(chat_files, known, "chat", reread=options.full or options.backfill)
        force_sell = options.full or state.settings.sell.snapshot_is_complete
        sell_todo = changed(sell_files, known, "sell", reread=force_sell)
        # the writer starts (its imports overlap the reading), then the parsing workers fork
        # while this process is small: on their first file (Sell's), and they stay for the chats
        writer = self._writer_process(bool(chat_todo or sell_todo))
        pool = self._worker_pool()
        started = time.perf_counter()
        sell = read_sell(state, self.sell_stage, sell_todo, pool)
        release_memory()  # the diff's frames are gone; their pages go back to the system
        log.info(
            "sell read",
            extra={"event": "sell_read", "sell_files": len(sell_todo),
                   "seconds": round(time.perf_counter() - started, 2)},
        )  # fmt: skip
        crm, sell.crm = sell.crm, None  # the run holds the CRM frames once, until indexed
        # configuration errors end the run here, before any write
        assignment = configure(state, users_of(store, crm))
        resumed = self._begin()
        log.info(
            "run started",
            extra={"event": "run_started", "run_id": state.run_id, "mode": state.mode, "resumed": resumed,
                   "store": store.display_url, "chat_files": len(chat_todo), "sell_files": len(sell.todo)},
        )  # fmt: skip
        sink = self._sink(writer)
        try:
            # the writer writes the Sell snapshot while the workers read the chats
            send_sell(state, sink, sell, self.sell_stage, resumed)
            sell.changes, sell.exported_ids = {}, {}  # sent: only the match index is kept
            staging = time.perf_counter()
            try:
                taken = self.engine.stage_chats(state, chat_todo, pool)
            finally:
                self._close_pool(pool)  # the files are read: the workers end
            log.info(
                "chats staged",
                extra={"event": "chats_staged", "chat_files": len(chat_todo),
                       "seconds": round(time.perf_counter() - staging, 2)},
            )  # fmt: skip
            intake.record_inputs(state, sink, taken, chat_todo, sell.rejects)
            planner = LazyPlanner(
                store,
                crm,
                lambda frames: build_planner(
                    state, frames, taken.agents, taken.departments, assignment
                ),
            )
            del crm
            chunks = Chunks(state, sink, planner)
            self.engine.process(chunks, taken.stage, resumed)
            sink.commit()  # all it was sent is committed
            self.sell_stage.close()  # (the writer read the Sell rows from it)
            if writer is not None:  # the writer's part is done: the rest is written here
                sink = chunks.sink = self._inline()
            chunks.rematch(
                taken.stage, sell.affected_emails if state.dry_run else store.rematch_queue()
            )
            report = finish.finish(state, sink, chat_todo)
        except RunStopped:
            log.warning(
                "run stopped; the next run with the same inputs resumes it",
                extra={"event": "run_stopped", "run_id": state.run_id},
            )
            raise
        except ChatsellError as exc:
            sink.abort()
            finish.fail(state, str(exc))
            raise
        except Exception as exc:
            sink.abort()
            finish.fail(state, f"{type(exc).__name__}: {exc}")
            raise
        except BaseException:  # an interrupt: what is open is rolled back, the run resumed later
            sink.abort()
            raise
        log.info(
            "run finished",
            extra={"event": "run_finished", "run_id": state.run_id, "status": report["status"],
                   "chats_read": report["accounting"]["chats_read"], "balanced": report["accounting"]["balanced"],
                   "rejects": report["rejects"], **report["writes"]},
        )  # fmt: skip
        finish.write_files(state, report, sink)
        leads = (
            pd.concat(state.planned_leads, ignore_index=True)
            if state.planned_leads
            else pd.DataFrame()
        )
        return RunResult(state.run_id, report, report["warnings"], leads)

    # -- the run's processes ---------------------------------------------------------------------

    def _writer_process(self, work: bool) -> ProcessSink | None:
        """The writer, started now (its start-up overlaps the reading); None where the run
        writes here: nothing to read (an unchanged sync), a dry run (nothing is written), Dask
        (its workers write), an in-memory store (another process cannot see it),
        ``write_process = false``."""
        state, store = self.state, self.state.store
        in_memory = store.dialect == "sqlite" and store.url.database in (None, "", ":memory:")
        if (
            not work
            or state.dry_run
            or state.options.engine == "dask"
            or in_memory
            or not state.settings.run.write_process
        ):
            return None
        # the run's SQLite connections are opened again with a reader's page cache (a server
        # connection is left: the run's lock is held on one)
        if store.dialect == "sqlite":
            store.dispose()
        writer = ProcessSink(store).start()
        self.resources.callback(store.reading_only, False)
        self.resources.callback(writer.close)
        store.reading_only()  # the writer writes the chunks; this process mostly reads
        return writer

    def _worker_pool(self):
        workers = self.state.settings.run.workers
        if workers <= 1 or not isinstance(self.engine, LocalEngine):
            return None
        pool = worker_pool(workers)
        self.resources.callback(self._close_pool, pool)
        return pool

    @staticmethod
    def _close_pool(pool) -> None:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    def _sink(self, writer: ProcessSink | None) -> Sink:
        state = self.state
        size = state.settings.run.commit_size
        if state.dry_run:
            return DrySink(state.store, state.counters, state.options.report_dir is not None)
        if writer is not None:
            return writer.bind(state.run_id, state.counters, size)
        return self._inline()

    def _inline(self) -> InlineSink:
        state = self.state
        return InlineSink(state.store, state.run_id, state.counters, state.settings.run.commit_size)

    # -- the run's row -----------------------------------------------------------------------------

    def _begin(self) -> bool:
        """The run's row (none in a dry run): a new one, or the interrupted run it resumes."""
        state, options = self.state, self.state.options
        if state.dry_run:
            return False
        if options.backfill:
            policy = "unfinished" if options.resume else "never"
        else:
            policy = "interrupted"
        state.run_id, resumed = state.store.begin_run(
            state.mode, self._input_key(), self._options(), self.holder, resume=policy
        )
        if resumed:
            state.counters = RunCounters.from_dict(state.store.counters(state.run_id))
        elif options.resume:
            state.warn("nothing to resume: no unfinished backfill of these inputs; starting anew")
        return resumed

    def _input_key(self) -> str:
        options = self.state.options
        material = [self.state.mode, str(options.chats.resolve()), str(options.sell.resolve()), options.full,
                    options.create_leads, options.notify, str(options.since), str(options.until),
                    str(options.window)]  # fmt: skip
        return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:32]

    def _options(self) -> dict[str, Any]:
        options = self.state.options
        out = {"chats": str(options.chats), "sell": str(options.sell), "full": options.full,
               "create_leads": options.create_leads, "notify": options.notify}  # fmt: skip
        if options.backfill:
            out.update(
                since=str(options.since), until=str(options.until), window=str(options.window)
            )
        return out
