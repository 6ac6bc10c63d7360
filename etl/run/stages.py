"""The stages of a sync that has something to read (``etl.run.runner`` runs them): the Sell
snapshot, the chat intake, planning and apply chunk by chunk, and finish; see the runner's
docstring for the sequence and how a run killed at any point is resumed.

Every write goes through the run's sink (``etl.contracts.Sink``): this process's, a writer
process's, or a dry run's, which writes nothing. This module is imported only by a run that
reads something: it brings the frame libraries, the planner and the writers with it.
"""

from __future__ import annotations

import contextlib
import logging
import time

import pandas as pd

from etl.contracts import Sink
from etl.errors import ChatsellError, RunStopped
from etl.load.sinks import InlineSink, ProcessSink
from etl.procs import release_memory, worker_pool
from etl.run import dask, finish, intake
from etl.run.chunks import Chunks
from etl.run.dry import DrySink
from etl.run.files import Todo
from etl.run.options import RunResult
from etl.run.planning import LazyPlanner, build_planner, configure
from etl.run.sell import index_sell, read_sell, send_sell, users_of
from etl.run.state import RunState
from etl.stage.chats import ChatStage
from etl.stage.sell import SellStage
from etl.vocab import RunCounters

log = logging.getLogger("chatsell.pipeline")


def execute(
    state: RunState, holder: dict[str, object], chat_todo: Todo, sell_todo: Todo
) -> RunResult:
    """The run's stages over the export files it reads (``etl.run.files.changed``)."""
    with contextlib.ExitStack() as resources:  # what the run started ends with it, however
        sell_stage = resources.enter_context(SellStage())
        if state.options.engine == "dask":
            engine = resources.enter_context(
                dask.DaskEngine.start(state.options.dask_scheduler, state.options.dask_workers)
            )
        else:
            engine = LocalEngine(resources.enter_context(ChatStage()))
        return _Sync(state, holder, engine, sell_stage, resources).run(chat_todo, sell_todo)


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

    def run(self, chat_todo: Todo, sell_todo: Todo) -> RunResult:
        state, store = self.state, self.state.store
        # the writer starts (its imports overlap the reading), then the parsing workers fork
        # while this process is small: on their first file (Sell's), and they stay for the chats
        writer = self._writer_process(bool(chat_todo or sell_todo))
        pool = self._worker_pool()
        started = time.perf_counter()
        sell = read_sell(state, self.sell_stage, sell_todo, pool)
        release_memory()  # what the Sell files' results left; their pages go back to the system
        log.info(
            "sell read",
            extra={"event": "sell_read", "sell_files": len(sell_todo),
                   "seconds": round(time.perf_counter() - started, 2)},
        )  # fmt: skip
        # configuration errors end the run here, before any write
        assignment = configure(state, users_of(store, sell))
        resumed = self._begin()
        log.info(
            "run started",
            extra={"event": "run_started", "run_id": state.run_id, "mode": state.mode, "resumed": resumed,
                   "store": store.display_url, "chat_files": len(chat_todo), "sell_files": len(sell.todo)},
        )  # fmt: skip
        sink = self._sink(writer)
        try:
            # the snapshot is diffed and the match index built in a process of its own, before
            # the writer takes the Sell snapshot and the workers the chats: this process holds
            # the index, compact, never the million records' Python strings it is made of. The
            # Sell workers end; the chats' fork before the index comes to this process (a
            # fork's pages count in each process's RSS)
            self._close_pool(pool)
            chat_pool: list = []
            planned_crm = index_sell(
                state, sell, self.sell_stage, fork=pool is not None,
                then=lambda: chat_pool.append(self._worker_pool(started=True)),
            )  # fmt: skip
            pool = chat_pool[0]
            # the writer writes the Sell snapshot while the workers read the chats
            send_sell(state, sink, sell, self.sell_stage, resumed)
            release_memory()
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
                state,
                planned_crm,
                lambda crm: build_planner(state, crm, taken.agents, taken.departments, assignment),
            )
            del planned_crm
            chunks = Chunks(state, sink, planner)
            self.engine.process(chunks, taken.stage, resumed)
            sink.commit()  # all it was sent is committed
            self.sell_stage.close()  # (the writer read the Sell rows from it)
            if writer is not None:  # the writer's part is done: the rest is written here
                writer.close()  # (its heap, ~300 MB at 3M chats, is not the report's to sit by)
                sink = chunks.sink = self._inline()
            chunks.rematch(
                taken.stage, sell.affected_emails if state.dry_run else store.rematch_queue()
            )
            # the planner (the CRM index, the run's new leads) is done too: the report is made
            # without them
            chunks.planner = planner = None
            release_memory()
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

    def _worker_pool(self, started: bool = False):
        """The parsing workers (None: this process parses). ``started``: forked now, not at
        their first task."""
        workers = self.state.settings.run.workers
        if workers <= 1 or not isinstance(self.engine, LocalEngine):
            return None
        pool = worker_pool(workers)
        self.resources.callback(self._close_pool, pool)
        if started:
            pool.submit(int).result()  # (a fork start method forks every worker at once)
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
            state.mode, options.input_key(state.mode), options.recorded(), self.holder,
            resume=policy,
        )  # fmt: skip
        if resumed:
            state.counters = RunCounters.from_dict(state.store.counters(state.run_id))
        elif options.resume:
            state.warn("nothing to resume: no unfinished backfill of these inputs; starting anew")
        return resumed
