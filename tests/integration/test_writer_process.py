"""The writer process: what a sync's chunks are written by (``[run] write_process``).

It must change nothing but speed: the same store as writing inline (test_batching), a failure
of the store reaching the run as the store's own words, and no writer outliving its run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from etl.errors import StoreError
from etl.load.sinks import ProcessSink
from etl.load.store import Store
from etl.run import SyncOptions, run_sync

from integration.scenario import batched_settings, make_exports, settings_for, sync
from storecheck import dump, rows


def _refuse(table: str) -> dict[str, list[str]]:
    """Statements that make the store refuse every insert into ``table``, and undo it."""
    return {
        "sqlite": [
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        ],
        "postgresql": [
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk says no'; "
            "END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
    }


def _allow(table: str) -> dict[str, list[str]]:
    return {
        "sqlite": ["DROP TRIGGER refuse"],
        "postgresql": [f"DROP TRIGGER refuse ON {table}", "DROP FUNCTION refuse()"],
    }


def _execute(url: str, statements: list[str]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


@pytest.mark.parametrize("write_process", [True, False], ids=["writer", "inline"])
@pytest.mark.parametrize("table", ["run_outcomes", "activities"])
def test_a_write_the_store_refuses_fails_the_run_in_the_stores_words(
    store_url, tmp_path, generated, monkeypatch, write_process, table
):
    """In the writer process or in the run's own (``[run] write_process``), in a transaction of
    the run's own (the rejects' outcomes) or in a batch of chunks (activities): the store's
    words, and nothing of the batch kept."""
    chats, sell, _manifest = generated
    started = []
    real_start = ProcessSink.start
    monkeypatch.setattr(ProcessSink, "start", lambda self: started.append(1) or real_start(self))
    dialect = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    _execute(store_url, _refuse(table)[dialect])
    settings = batched_settings(store_url, 40, 120, write_process=write_process)
    with pytest.raises(StoreError, match="disk says no"):
        sync(store_url, chats, sell, settings=settings)
    assert started == ([1] if write_process else [])  # where the chunks went
    assert rows(store_url, "SELECT status FROM runs") == [("failed",)]
    # no chunk's outcome is kept (the rejects' own transaction may have committed before)
    assert rows(store_url, "SELECT count(*) FROM run_outcomes WHERE outcome <> 'rejected'") == [
        (0,)
    ]
    assert rows(store_url, "SELECT count(*) FROM activities") == [(0,)]  # rolled back with them

    _execute(store_url, _allow(table)[dialect])
    report = sync(store_url, chats, sell, settings=settings).report
    assert report["status"] == "succeeded" and report["accounting"]["balanced"]
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    sync(reference, chats, sell, settings=batched_settings(reference, 40, 120, False))
    assert dump(store_url, drop_run_columns=True) == dump(reference, drop_run_columns=True)


_ORPHAN = """
import os, signal, sys
from etl.load.sinks import ProcessSink
from etl.load.store import Store
from etl.run import SyncOptions, run_sync
writer = ProcessSink(Store(sys.argv[1])).start()
if os.fork() == 0:  # another process holding the planner's end of the pipe open
    import time
    time.sleep(5)
    os._exit(0)
print(writer.process.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_a_writer_never_outlives_its_planner(tmp_path):
    planner = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, f"sqlite:///{tmp_path / 'store.db'}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        writer = int(planner.stdout.readline())
        assert planner.wait(timeout=60) == -9
    finally:
        planner.stdout.close()  # (the writer holds the other end too: not read to its end)
    deadline = time.monotonic() + 3  # the pipe stays open: the writer notices the death itself
    while _alive(writer) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(writer)


def test_a_backfill_without_chats_still_writes_the_sell_snapshot(store_url, tmp_path):
    """No window, so no batch: the writer wrote only single transactions, and the run's write
    counters are its own."""
    _chats, sell = make_exports(tmp_path)
    empty = tmp_path / "no_chats"
    empty.mkdir()
    settings = settings_for(store_url).model_copy(deep=True)
    settings.run.write_process = True
    report = sync(store_url, empty, sell, settings=settings, mode="backfill").report
    assert report["status"] == "succeeded" and report["accounting"]["chats_read"] == 0
    assert report["inputs"]["sell_records"]["leads"] == 3
    assert rows(store_url, "SELECT count(*) FROM leads") == [(3,)]
    assert set(report["writes"].values()) == {0}


def test_the_writer_inherits_no_sqlite_connection_of_the_run(tmp_path, generated, monkeypatch):
    """The run closes its pooled connections whenever it likes (here: right after the fork).
    A writer forked with the run's SQLite connections open inherits their locks and WAL index
    without holding them; the run's closing its last connection then removes the WAL under the
    writer, and the store ends corrupt (found at a million chats: "database disk image is
    malformed"; here the run loses chats). SQLite's alone: a server's connections have no
    shared file state."""
    chats, sell, _manifest = generated
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(store_url)  # the run's
    real_start = ProcessSink.start

    def start_then_close_the_runs_connections(self):
        started = real_start(self)
        store.dispose()
        return started

    monkeypatch.setattr(ProcessSink, "start", start_then_close_the_runs_connections)
    settings = batched_settings(store_url, 40, 120, write_process=True)
    try:
        report = run_sync(settings, SyncOptions(chats=chats, sell=sell), store=store).report
    finally:
        store.dispose()
    assert report["status"] == "succeeded" and report["accounting"]["balanced"]
    assert rows(store_url, "PRAGMA integrity_check") == [("ok",)]
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    sync(reference, chats, sell, settings=batched_settings(reference, 40, 120, False))
    assert dump(store_url, drop_run_columns=True) == dump(reference, drop_run_columns=True)


def test_a_connection_the_caller_holds_to_the_store_costs_no_write(
    tmp_path, generated, monkeypatch
):
    """A library caller may hold an engine of its own on the SQLite file while it syncs, and
    close it whenever it likes: here right after the writer started, as the garbage collector
    did, at random, to a ``Store(url).upgrade()`` never disposed. A writer forked with that
    connection open inherited SQLite's record of its locks and WAL index without the locks, and
    its commits were lost when it closed: the run reported its writes, the store held none."""
    chats, sell, _manifest = generated
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    callers = Store(store_url)
    callers.upgrade()  # its connection stays open, in its pool
    real_start = ProcessSink.start

    def start_then_close_the_callers_connection(self):
        started = real_start(self)
        callers.dispose()
        return started

    monkeypatch.setattr(ProcessSink, "start", start_then_close_the_callers_connection)
    settings = batched_settings(store_url, 40, 120, write_process=True)
    try:
        report = sync(store_url, chats, sell, settings=settings).report
    finally:
        callers.dispose()
    assert report["status"] == "succeeded" and report["accounting"]["balanced"]
    written = report["writes"]["activities_inserted"]
    assert written > 0 and rows(store_url, "SELECT count(*) FROM activities") == [(written,)]
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    sync(reference, chats, sell, settings=batched_settings(reference, 40, 120, False))
    assert dump(store_url, drop_run_columns=True) == dump(reference, drop_run_columns=True)


@pytest.mark.parametrize("write_process", [True, False])
def test_beside_a_writer_the_run_reads_with_a_smaller_page_cache(
    tmp_path, generated, monkeypatch, write_process
):
    """SQLite's page cache is per connection: the run's reading connections beside a writer
    process get the reader's (its memory is the run's peak in a --full run); the writer, and a
    run that writes itself, the writer's. The caller's store is left as it was given."""
    from etl.load import store as store_module

    chats, sell, _manifest = generated
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(store_url)
    seen: list[int] = []
    real_versions = Store.chat_versions

    def chat_versions(self, chat_ids):
        with self.engine.connect() as conn:  # a connection of the run's process
            seen.append(conn.exec_driver_sql("PRAGMA cache_size").scalar())
        return real_versions(self, chat_ids)

    settings = batched_settings(store_url, 40, 120, write_process=write_process)
    try:
        # a second run: a first looks up none of its chats (the store holds none)
        run_sync(settings, SyncOptions(chats=chats, sell=sell), store=store)
        monkeypatch.setattr(Store, "chat_versions", chat_versions)
        report = run_sync(
            settings, SyncOptions(chats=chats, sell=sell, full=True), store=store
        ).report
        assert store.sqlite_cache_kib == store_module.WRITE_CACHE_KIB
    finally:
        store.dispose()
    assert report["status"] == "succeeded" and len(seen) > 1
    kib = store_module.READ_CACHE_KIB if write_process else store_module.WRITE_CACHE_KIB
    assert set(seen) == {-kib}
    assert rows(store_url, "PRAGMA integrity_check") == [("ok",)]


class _Slow:
    """``writers.write_outcomes`` taking ``seconds`` more at each call, in the writer process."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, *args, **kwargs):
        time.sleep(self.seconds)
        return _Slow.original(*args, **kwargs)


def _slow_down(_conn, slow: _Slow) -> None:
    """Run in the writer process (``ProcessSink.call``)."""
    from etl.load import writers  # noqa: PLC0415

    _Slow.original = writers.write_outcomes
    writers.write_outcomes = slow


def test_the_planner_plans_ahead_of_a_slow_writer(tmp_path, generated, monkeypatch):
    """Two plans ahead of the writer, sent from a thread, each batch committed without waiting:
    the planner plans chunks 1 to 3 while the writer is still writing the first (it waited for
    each chunk to be taken, and for each commit, before). The store ends the same."""
    from etl.run.chunks import Chunks

    chats, sell, _ = generated
    seconds = 1.5
    real_start = ProcessSink.start
    monkeypatch.setattr(
        ProcessSink, "start", lambda sink: real_start(sink).call(_slow_down, _Slow(seconds)) or sink
    )
    planned: list[float] = []
    real_plan = Chunks.plan
    monkeypatch.setattr(
        Chunks,
        "plan",
        lambda self, *a, **k: planned.append(time.monotonic()) or real_plan(self, *a, **k),
    )
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    sync(url, chats, sell, settings=batched_settings(url, 100, 100))  # a commit every chunk
    assert len(planned) >= 4
    assert planned[2] - planned[0] < seconds  # the writer was still at chunk 1
    monkeypatch.undo()
    inline = f"sqlite:///{tmp_path / 'inline.db'}"
    sync(inline, chats, sell, settings=batched_settings(inline, 100, 100, write_process=False))
    volatile = frozenset({"created_at", "loaded_at", "started_at", "finished_at", "updated_at"})
    assert dump(url, drop=volatile) == dump(inline, drop=volatile)


def test_no_thread_of_the_writer_runs_while_the_run_forks(tmp_path, generated, monkeypatch):
    """The parsing workers and the Sell diff are forked from the run: the thread that sends
    the writer its plans starts with the first plan, after every fork (a fork copies one
    thread and whatever locks the others held)."""
    import threading

    from etl.run import sell as run_sell
    from etl.run import stages

    chats, sell, _ = generated
    seen: dict[str, list[set[str]]] = {"fork": [], "plan": []}

    def names() -> set[str]:
        return {thread.name for thread in threading.enumerate()}

    for module in (stages, run_sell):
        real_pool = module.worker_pool

        def pool(*args, _real=real_pool, **kwargs):
            seen["fork"].append(names())
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "worker_pool", pool)
    real_apply = ProcessSink.apply

    def apply(sink, job):
        real_apply(sink, job)
        seen["plan"].append(names())

    monkeypatch.setattr(ProcessSink, "apply", apply)
    url = f"sqlite:///{tmp_path / 'forks.db'}"
    sync(url, chats, sell, settings=batched_settings(url, 100))
    assert len(seen["fork"]) >= 2 and seen["plan"]  # the Sell workers, the diff, the chats'
    assert not any("chatsell-writer-pipe" in live for live in seen["fork"])
    assert all("chatsell-writer-pipe" in live for live in seen["plan"])


def test_a_plan_of_chats_the_store_holds_is_compared_by_the_writer(
    tmp_path, generated, monkeypatch
):
    """The planner prepares plans of new chats (``prepare_plan``); a plan with chats the store
    holds goes to the writer as it is, which reads and compares their stored activities itself
    (a --full run's planner did that work while the writer waited). Both ways, the store ends
    as a run that writes inline leaves it."""
    from etl.load import sinks

    chats, sell, _ = generated
    prepared: list[int] = []
    real_prepare = sinks.prepare_plan

    def prepare(conn, run_id, job):
        prepared.append(len(job.held))
        return real_prepare(conn, run_id, job)

    monkeypatch.setattr(sinks, "prepare_plan", prepare)
    volatile = frozenset({"created_at", "loaded_at", "started_at", "finished_at", "updated_at"})
    url = f"sqlite:///{tmp_path / 'writer.db'}"
    inline = f"sqlite:///{tmp_path / 'inline.db'}"
    sync(url, chats, sell, settings=batched_settings(url, 100))
    assert len(prepared) >= 4 and set(prepared) == {0}  # the first sync: every chat new
    prepared.clear()
    report = sync(url, chats, sell, settings=batched_settings(url, 100), full=True).report
    assert report["status"] == "succeeded" and report["inputs"]["chats_read"] > 0
    assert prepared == []  # every chat held: every plan went as it is
    for options in ({}, {"full": True}):
        sync(
            inline,
            chats,
            sell,
            settings=batched_settings(inline, 100, write_process=False),
            **options,
        )
    assert dump(url, drop=volatile) == dump(inline, drop=volatile)
