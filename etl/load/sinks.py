"""Where a run's writes go in the store: here (``InlineSink``), or in a writer process beside
the planner (``ProcessSink``). Both implement ``etl.contracts.Sink`` and apply plans through the
one write path, ``etl.load.apply.apply_plan`` (a writer process its second half,
``write_prepared``, the planner having made the plan's rows ready with its first).

Planning a chunk (pandas) and writing it (the driver building rows, the database's B-trees) each
take about half of a sync, and both hold the GIL: a thread cannot overlap them. A writer process
can: it writes chunk N while this process plans chunk N+1, so a sync uses both CPUs of a
small machine. The writer changes nothing about what is written or when it commits:

- it writes what it is sent in the order it was sent: plans in the transaction of their batch
  (``[run] commit_size``), committed only when told, with the counters the planner sent; the
  run's other transactions (the Sell snapshot, the inputs and rejects, the run's end) each
  committed on its own, in order: the planner builds its index and plans the first chunks while
  the Sell records are written;
- a plan's rows, its outcomes and the counters that cover them still commit together, so a
  kill at any instant loses at most the open batch, which the next run redoes;
- it is a fresh interpreter, started at the start of a run (its imports overlap the run's
  reading), not a fork: it holds nothing of the planner's memory but what it writes, and none of
  the state SQLite keeps per process for a caller's connections to the store (a writer forked
  with one open believed it held locks it did not, and its commits were lost when the caller's
  connection closed);
- it never outlives the run: it stops on the planner's word, on a closed pipe, or within
  50 ms of the planner's death (a ``kill -9`` of the run), and a transaction it had open is
  then rolled back by the database, never committed.

``InlineSink`` writes in this process (``[run] write_process = false``, an in-memory store, a
Dask backfill's own transactions).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any

from sqlalchemy.engine import Connection

from etl.errors import RunFailed
from etl.load import faults, writers
from etl.load.apply import (
    PreparedPlan,
    apply_plan,
    prepare_plan,
    record_inputs,
    write_prepared,
)
from etl.load.store import Store
from etl.procs import release_memory
from etl.vocab import PlanWrite, RunCounters, RunInputs

log = logging.getLogger("chatsell.writer")


class InlineSink:
    """Plans written in this process, several chunks to one transaction of ``size`` chats.

    Each commit rewrites every index page its rows touched. Chat ids are random, so a chunk of
    20k touches nearly every leaf page of the chat, outcome and activity keys: at a million
    chats, committing per chunk wrote ~7x the store's size. Progress (outcomes and counters)
    still commits with the rows it covers, so a kill loses at most one batch, redone on resume.
    """

    elsewhere = False

    def __init__(self, store, run_id: int, counters: RunCounters, size: int) -> None:
        self.store, self.run_id, self.counters, self.size = store, run_id, counters, size
        self.pending = 0
        self._open: contextlib.AbstractContextManager[Connection] | None = None
        self._conn: Connection | None = None

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        self.commit()
        with self.store.transaction() as conn:
            fn(conn, *args)

    def record_inputs(self, inputs: RunInputs) -> None:
        self.call(record_inputs, self.run_id, inputs, self.counters)

    def apply(self, job: PlanWrite) -> None:
        if self._open is None:
            self._open = self.store.transaction()
            self._conn = self._open.__enter__()
        try:
            self.counters.writes.add(apply_plan(self._conn, self.run_id, job))
            writers.save_counters(self._conn, self.run_id, self.counters)
        except BaseException:
            # rolled back with the real exception: a statement the store refused is raised as
            # the store's StoreError (etl.load.store.base), as a transaction of its own would be
            self._close(*sys.exc_info())
            raise

    def applied(self, chats: int) -> None:
        self.pending += chats
        if self.pending >= self.size:
            self.commit()

    def commit(self) -> None:
        self._close(None, None, None)

    def close(self) -> None:
        self.commit()

    def abort(self) -> None:
        self._close(RunFailed, RunFailed("aborted"), None)

    def outcome_summary(self) -> tuple[dict[str, int], int, dict[str, int]]:
        return self.store.outcome_summary(self.run_id)

    def _close(self, *exc: Any) -> None:
        opened, self._open, self._conn, self.pending = self._open, None, None, 0
        if opened is not None:
            opened.__exit__(*exc)


class WriterDied(RunFailed):
    """The writer process ended without being told to (killed, out of memory)."""


class ProcessSink:
    """A process that writes what it is sent; see the module's docstring.

    Start it with ``start`` early in the run, and ``bind`` it to the run once the run has its
    row. Plans go out with ``apply`` while the previous one is being written (one plan in
    flight, so memory stays bounded); ``applied`` commits every ``size`` chats and ``commit``
    commits now and waits for it. ``counters.writes`` is brought up to date at every commit the
    planner waits for.
    """

    elsewhere = True

    POLL_PARENT_S = 0.05

    def __init__(self, store) -> None:
        self.store = store  # the run's: it reads here; the writer opens its own
        self.store_url = store.url.render_as_string(hide_password=False)
        self.process: subprocess.Popen | None = None
        self._pipe = None
        self._in_flight = 0
        self._committing = 0  # commits sent and not yet answered
        self._begun = False
        self.pending = 0
        self.size = 0
        self.run_id = 0
        self.counters = RunCounters()
        self._counting = False  # whether the writer holds the fault points' counts

    def start(self) -> ProcessSink:
        """A new interpreter, not a fork: nothing of this process crosses but its pipe's end
        (no file descriptor, no SQLite state of a connection the caller holds to the store)."""
        ours, theirs = multiprocessing.Pipe(duplex=True)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-c", _BOOT, str(theirs.fileno())],
                stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
            )  # fmt: skip
        finally:
            theirs.close()
        self._pipe = ours
        # through the pipe, not the command line, which every user of the machine can read:
        # the store URL may hold its password. Sent before ``start`` returns (no thread sends
        # yet): until the writer has it, it does not watch this process
        self._sender = _Sender(ours)
        self._send((sys.path, self.store_url, os.getpid(), self.POLL_PARENT_S))
        return self

    def bind(self, run_id: int, counters: RunCounters, size: int) -> ProcessSink:
        self.run_id, self.counters, self.size = run_id, counters, size
        return self

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn(conn, *args)`` there, in a transaction of its own, committed; not waited for
        (the next commit waits for it). ``fn`` is a module-level function."""
        if self._begun:  # after the batch it was given: commit that first
            self.commit()
        self._send(("call", fn, args, self._hand_counts()))

    def record_inputs(self, inputs: RunInputs) -> None:
        self.call(record_inputs, self.run_id, inputs, self.counters)

    def _hand_counts(self) -> dict[str, int] | None:
        """This process's fault counts, the first time the writer commits after it did."""
        if self._counting:
            return None
        self._counting = True
        return faults.counts()

    def apply(self, job: PlanWrite) -> None:
        if not self._begun:  # a batch: its plans commit together, counted from the run's writes
            # (while a batch's commit is unanswered, the writer's count of the writes is ahead
            # of this process's: it keeps its own)
            writes = self.counters.writes if not self._committing else None
            self._send(("begin", self.run_id, writes, self._hand_counts()))
            self._begun = True
        # a plan of new chats is made ready to write here, while the writer writes the one
        # before: the writer then only binds its rows (``PreparedPlan``). A plan with chats the
        # store holds (``job.held``) goes as it is: their stored activities are read and
        # compared by the writer, which has less to do on such a chunk than this process
        # (--full at a million light chats, measured back to back: on PostgreSQL 196.0 s
        # prepared here, 136.4 s there; on SQLite 112.4 s and 99.5 s). So does a plan of no
        # chat to write: held chats whose rows are the stored ones (``etl.transform.plankey``)
        # leave only their outcomes, and this process is the longer one then too
        message: PlanWrite | PreparedPlan = job
        if job.held.empty and not job.plan.chats.empty:
            with self.store.engine.connect() as conn:
                message = prepare_plan(conn, self.run_id, job).frozen()
        self._sender.threaded()
        self._send(("plan", message, self.counters))
        self._in_flight += 1
        # two plans ahead of the writer at most: one it writes, one waiting for it (sent from a
        # thread, ``_Sender``) while this process plans the next; a chunk that takes longer to
        # plan than to write, or the other way round, then costs neither process a wait
        while self._in_flight > 2:
            self._receive()

    def applied(self, chats: int) -> None:
        """Every ``size`` chats, the batch is committed without waiting: the next chunk is
        planned while the writer commits (``commit`` waits for every commit sent)."""
        self.pending += chats
        if self.pending >= self.size:
            self._send_commit()

    def commit(self) -> None:
        """Commit what was sent and wait for it; the counters then hold its writes."""
        self._send_commit()
        while self._committing:
            self._receive()

    def _send_commit(self) -> None:
        self._send(("commit",))
        self._committing += 1
        self.pending = 0
        self._begun = False

    def outcome_summary(self) -> tuple[dict[str, int], int, dict[str, int]]:
        return self.store.outcome_summary(self.run_id)

    def close(self) -> None:
        """End the process (nothing is open between batches)."""
        self._end("exit")

    def abort(self) -> None:
        """Roll back the open batch and end the process (the planner failed or was stopped)."""
        self._end("abort")

    def _end(self, word: str) -> None:
        if self.process is None:
            return
        with contextlib.suppress(OSError, EOFError):
            self._sender.put((word,))
        self._sender.close(30)
        _reap(self.process, 30)
        self._sender.close(5)  # (a writer that was killed took nothing more: its pipe is shut)
        self._pipe.close()
        self.process = None

    def _send(self, message: tuple) -> None:
        if self.process is None:
            raise WriterDied("the writer process is not running")
        try:
            self._sender.put(message)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            self._died()

    def _receive(self) -> None:
        """Take the writer's next answer: a plan written, a batch committed, or its error."""
        try:
            message = self._pipe.recv()
        except (EOFError, ConnectionResetError, OSError):
            self._died()
        if message[0] == "error":
            self._in_flight = self._committing = 0
            _, error, detail = message
            _reap(self.process, 30)
            self._sender.close(5)
            self.process = None
            log.debug("writer process failed:\n%s", detail)
            raise error
        if message[0] == "written":
            self._in_flight -= 1
        elif message[0] == "committed":
            _, writes, counts = message
            self._committing -= 1
            if writes is not None:  # (None: no batch was begun, only single transactions)
                self.counters.writes = writes
            faults.adopt(counts)
            if not self._committing and not self._begun:  # else the writer holds them still
                self._counting = False

    def _died(self):
        with contextlib.suppress(OSError, EOFError):  # it may have said why before it ended
            while self._pipe.poll():
                message = self._pipe.recv()
                if message[0] == "error":
                    _reap(self.process, 30)
                    self._sender.close(5)
                    self.process = None
                    raise message[1]
        process, self.process = self.process, None
        code = None
        if process is not None:
            code = _reap(process, 5)
        self._sender.close(5)
        raise WriterDied(
            f"the writer process ended unexpectedly (exit code {code}); nothing it had not "
            "committed is kept, and the next run starts again from the last commit"
        )


class _Sender:
    """Sends the writer its messages, in order: in the caller's thread at first, and from a
    thread of its own once ``threaded`` (the first plan): a plan's bytes then go while the
    planner plans the next chunk, instead of the planner waiting for the writer to take them
    (one waits at most). No thread runs before that, while the run forks its parsing workers
    and its Sell diff. An error sending from the thread is raised by the next ``put``."""

    def __init__(self, pipe) -> None:
        self._pipe = pipe
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def threaded(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="chatsell-writer-pipe", daemon=True
            )
            self._thread.start()

    def put(self, message: tuple) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._pipe.send(message)
        else:
            self._queue.put(ForkingPickler.dumps(message))

    def close(self, timeout: float) -> None:
        """Send what was put, then end the thread, within ``timeout`` seconds (a writer that
        does not read for that long is killed by the caller, and its pipe then fails fast)."""
        if self._thread is None or not self._thread.is_alive():
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._pipe.send_bytes(data)
                except (OSError, EOFError) as exc:  # the writer is gone: its end says why
                    self._error = exc


def _reap(process: subprocess.Popen, timeout: float) -> int:
    """``process``'s exit code, once it has ended: by itself within ``timeout``, else killed."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


# The writer's lines (``python -c``, the pipe's end as argument), in the order that keeps the
# guarantees from its first instant: the signals the planner decides on are ignored; the
# planner's sys.path replaces this interpreter's (``-P``: nor is the working directory searched
# before it); the planner is watched before the writer's half second of imports. Once served, it
# exits without the interpreter's teardown (a fifth of a second of pandas and SQLAlchemy, which
# the run would wait for): what it wrote is committed or rolled back, and its store disposed.
_BOOT = """\
import os, signal, sys, threading
for number in (signal.SIGINT, signal.SIGTERM):
    signal.signal(number, signal.SIG_IGN)
from multiprocessing.connection import Connection
pipe = Connection(int(sys.argv[1]))
path, store_url, parent, poll_s = pipe.recv()
sys.path[:] = path
from etl.procs import watch_parent
threading.Thread(target=watch_parent, args=(parent, poll_s), daemon=True).start()
from etl.load.sinks import _serve
_serve(pipe, store_url, parent)
os._exit(0)
"""


def _serve(pipe, store_url: str, parent: int) -> None:
    """The writer process, once ``_BOOT`` has set it up: take messages until told to stop;
    never commit on its own."""
    # what is imported by now (~100k objects of pandas and SQLAlchemy) lives as long as the
    # process: left out of every collection (a 100k sync's writer spent 0.6 to 0.95 s
    # collecting, 0.55 s so)
    gc.freeze()
    faults.die_with(parent)
    store: Store | None = None
    tx: contextlib.AbstractContextManager[Connection] | None = None
    conn: Connection | None = None
    run_id, writes = 0, None
    try:
        while True:
            try:
                message = pipe.recv()
            except (EOFError, OSError):
                break  # the planner is gone: what is open rolls back with this process
            kind = message[0]
            if store is None and kind in ("call", "plan"):
                store = Store(store_url)
            if kind == "begin":
                _, run_id, sent, counts = message
                if sent is not None:  # (None: the planner has not heard of the last commit yet)
                    writes = sent
                if counts is not None:
                    faults.adopt(counts)
            elif kind == "call":
                _, fn, args, counts = message
                if counts is not None:
                    faults.adopt(counts)
                with store.transaction() as called:
                    fn(called, *args)
                del fn, args
                release_memory()  # the Sell snapshot's rows: hundreds of MB, once
            elif kind == "plan":
                _, job, snapshot = message
                if tx is None:
                    tx = store.transaction()
                    conn = tx.__enter__()
                if isinstance(job, PreparedPlan):
                    writes.add(write_prepared(conn, run_id, job))
                else:  # a plan of chats the store holds (``ProcessSink.apply``)
                    writes.add(apply_plan(conn, run_id, job))
                snapshot.writes = writes
                writers.save_counters(conn, run_id, snapshot)
                del job
                pipe.send(("written",))
            elif kind == "commit":
                if tx is not None:
                    opened, tx, conn = tx, None, None
                    opened.__exit__(None, None, None)
                pipe.send(("committed", writes, faults.counts()))
                release_memory()
            elif kind in ("abort", "exit"):
                break
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the planner
        detail = traceback.format_exc()
        if tx is not None:  # rolls back, and says it as the store does (StoreError)
            opened, tx = tx, None
            try:
                opened.__exit__(type(exc), exc, exc.__traceback__)
            except BaseException as said:  # noqa: BLE001
                exc = said
        with contextlib.suppress(Exception):
            pipe.send(("error", _portable(exc), detail))
    finally:
        if tx is not None:  # told to stop with a batch open: it is not committed
            with contextlib.suppress(Exception):
                conn.rollback()
        if store is not None:
            store.dispose()
        pipe.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` as the planner will raise it, as if the write had failed there: itself when it
    survives pickling (its traceback stays in the writer's debug log), else a RunFailed saying
    what it was. An interrupt stays one: the run is left to resume, as when interrupted inline."""
    import pickle  # noqa: PLC0415

    if isinstance(exc, KeyboardInterrupt):
        return KeyboardInterrupt()
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own object, round-tripped
        exc.__traceback__ = None
        exc.__context__ = exc.__cause__ = None  # (a driver's cause may not pickle)
        return exc
    except Exception:  # noqa: BLE001
        return RunFailed(f"the writer process failed: {type(exc).__name__}: {exc}")
