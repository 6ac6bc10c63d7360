"""``backfill --engine dask``: the same backfill, its heavy parts on Dask distributed workers.

The plan of a batch has three steps (``etl.transform.plan``): prepare and build are per chat,
decide needs the one stable order. Here:

- read, on the workers: each chat file is parsed by one task; its chats are hashed by chat id
  into partitions, and each partition keeps the newest version of each chat, as the
  single-process stage does. Partitions stay in the workers' memory; only rejects, agents and
  departments come back to this process.
- per window, on the workers: each partition prepares its chats of the window (the store's
  version when newer, normalize, match against the CRM index scattered once to every worker).
- per window, here: decide over the window's lead and phone candidates of all partitions, in the
  single-process order (start time, chat id): which chat creates each lead, its owner, the
  phones. One transaction writes the leads, the pool pointers and the phone changes.
- per window, on the workers: each partition builds and writes its chats, activities, notes,
  notifications and outcomes, with its write counts, in one transaction. A partition whose
  outcomes are already there writes nothing, so Dask may run any task again (a lost worker).
- the window is marked finished here; ``--resume`` goes on after the last finished one.

Workers get the store URL as a ``SecretStr`` (its repr is masked in task graphs and logs) and
every other input as a value; they keep nothing of this process's state.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import SecretStr

from etl.errors import ConfigError, RunStopped
from etl.extract.chats import empty_chat_frame
from etl.extract.chats import read_file as read_chat_file
from etl.extract.files import SourceFile
from etl.load import faults, writers
from etl.load.apply import apply_plan
from etl.load.store import Store
from etl.run.chunks import Chunks, backfill_windows, newest_versions
from etl.run.intake import Intake, intake_of
from etl.run.state import RunState
from etl.stage.versions import keep_newest
from etl.transform.plan import Decisions, PlanContext, Prepared, build_plan, prepare
from etl.vocab import PHONE_CANDIDATE_COLUMNS, ChunkPlan, PlanWrite, RunCounters, WriteCounts

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger("chatsell.dask")


@contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, or of a LocalCluster of ``workers`` processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - the [dask] extra is part of [dev]
        raise ConfigError(
            "--engine dask needs Dask distributed: pip install 'chatsell[dask]'"
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as exc:
            raise ConfigError(
                f"--scheduler: no Dask scheduler answers at {scheduler} ({exc})"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    with (
        LocalCluster(
            n_workers=workers or 2,
            threads_per_worker=1,
            processes=True,
            # any free port: None still serves its HTTP routes on 8787, and a second cluster
            # on the host (another backfill, a notebook's) would then warn and take another
            dashboard_address=":0",
            silence_logs=logging.WARNING,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


class DaskEngine:
    """The Dask engine of a backfill: what ``etl.run.stages.LocalEngine`` is for one process.
    Its chats are staged on the workers (``DaskStage``), and each window is planned and
    applied there (``process_windows``), through the same contracts and write path."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @classmethod
    @contextmanager
    def start(cls, scheduler: str | None, workers: int | None) -> Iterator[DaskEngine]:
        with dask_client(scheduler, workers) as client:
            yield cls(client)

    def stage_chats(self, state: RunState, todo, _pool=None) -> Intake:
        """The chat files parsed on the workers into one partition per worker."""
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        stage, metas = stage_on_workers(
            self.client, [s for s, _ in todo], state.settings.run.chunk_size, partitions=workers
        )
        state.progress("read", sum(m["chats"] for m in metas), None)
        return intake_of(
            state,
            stage,
            [a for m in metas for a in m["agents"]],
            [d for m in metas for d in m["departments"]],
            [r for m in metas for r in m["rejects"]],
        )

    def process(self, chunks: Chunks, stage: DaskStage, resumed: bool) -> None:
        state = chunks.state
        options = state.options
        windows = backfill_windows(stage, options.since, options.until, options.window)
        finished = (
            state.store.finished_windows(state.run_id)
            if resumed and state.run_id is not None
            else set()
        )
        process_windows(chunks, self.client, stage, windows, finished, resumed)


# -- the run's chats, partitioned on the workers ---------------------------------------------------


class DaskStage:
    """The staged chats of a run, as partitions held by the workers (what ``etl.stage.chats.ChatStage`` is for a
    single process): counted, spanned and asked about without bringing them here."""

    def __init__(self, client: Client, partitions: list[Future]) -> None:
        self.client = client
        self.partitions = partitions

    def count(self, since: pd.Timestamp | None = None, until: pd.Timestamp | None = None) -> int:
        counts = self.client.gather(
            [self.client.submit(_count, p, since, until) for p in self.partitions]
        )
        return int(sum(counts))

    def span(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        spans = [
            s
            for s in self.client.gather([self.client.submit(_span, p) for p in self.partitions])
            if s
        ]
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def window_counts(self, windows: list[tuple[pd.Timestamp, pd.Timestamp]]) -> list[int]:
        """Chats staged in each window, counted in one pass over every partition."""
        counts = self.client.gather(
            [self.client.submit(_window_counts, p, windows) for p in self.partitions]
        )
        return [int(sum(c[i] for c in counts)) for i in range(len(windows))]

    def started_at(self, chat_ids) -> pd.Series:
        """chat_id -> start time, for those of these chats that are staged."""
        ids = list(dict.fromkeys(chat_ids))
        found = self.client.gather(
            [self.client.submit(_started_at, p, ids) for p in self.partitions]
        )
        found = [f for f in found if not f.empty]
        return pd.concat(found) if found else pd.Series(dtype="datetime64[us, UTC]")

    def staged(self, chat_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(chat_ids))
        found = self.client.gather([self.client.submit(_staged, p, ids) for p in self.partitions])
        return set().union(*found)

    def chunks(
        self, size: int, since: pd.Timestamp | None = None, until: pd.Timestamp | None = None
    ) -> Iterator[pd.DataFrame]:
        """The staged chats of [since, until) brought here, in the one stable order, ``size``
        at a time (the engine itself plans windows on the workers instead)."""
        parts = self.client.gather(
            [self.client.submit(_in_window, p, since, until) for p in self.partitions]
        )
        parts = [p for p in parts if not p.empty]
        if not parts:
            return
        chats = pd.concat(parts, ignore_index=True)
        chats = chats.sort_values(["started_at", "chat_id"], kind="stable").reset_index(drop=True)
        for start in range(0, len(chats), size):
            yield chats.iloc[start : start + size].reset_index(drop=True)


def stage_on_workers(
    client: Client, files: list[SourceFile], batch_size: int, partitions: int
) -> tuple[DaskStage, list[dict[str, Any]]]:
    """Parse the chat files on the workers into ``partitions`` deduplicated partitions.

    Returns the stage and, per file in file order, its rejects, agents and departments.
    """
    reads = [client.submit(_read, source, batch_size, partitions, pure=False) for source in files]
    metas = client.gather([client.submit(operator.itemgetter(1), r) for r in reads])
    splits = [client.submit(operator.itemgetter(0), r) for r in reads]
    merged = [client.submit(_merge, number, *splits) for number in range(partitions)]
    client.gather([client.submit(len, m) for m in merged])  # a file that cannot be read fails here
    del reads, splits  # the partitions hold the chats now; the per-file copies can go
    return DaskStage(client, merged), metas


def _read(
    source: SourceFile, batch_size: int, partitions: int
) -> tuple[list[pd.DataFrame], dict[str, Any]]:
    batches = read_chat_file(source, batch_size)
    frames = [b.chats for b in batches if not b.chats.empty]
    chats = pd.concat(frames, ignore_index=True) if frames else empty_chat_frame()
    bucket = pd.util.hash_pandas_object(chats["chat_id"], index=False).to_numpy() % partitions
    parts = [chats[bucket == n].reset_index(drop=True) for n in range(partitions)]
    meta = {
        "rejects": [r for b in batches for r in b.rejects],
        "agents": [b.agents for b in batches],
        "departments": [b.departments for b in batches],
        "chats": len(chats),
    }
    return parts, meta


def _merge(number: int, *splits: list[pd.DataFrame]) -> pd.DataFrame:
    """One partition from every file's share: the newest version of each chat (the earliest file
    on a tie, as the stage keeps), in the stable order."""
    frames = [s[number] for s in splits if not s[number].empty]
    if not frames:
        return empty_chat_frame()
    chats = keep_newest(pd.concat(frames, ignore_index=True))
    return chats.sort_values(["started_at", "chat_id"], kind="stable").reset_index(drop=True)


def _in_window(chats: pd.DataFrame, since, until) -> pd.DataFrame:
    keep = pd.Series(True, index=chats.index)
    if since is not None:
        keep &= chats["started_at"] >= pd.Timestamp(since)
    if until is not None:
        keep &= chats["started_at"] < pd.Timestamp(until)
    return chats[keep]


def _value(value: Any) -> Any:
    return value


def _count(chats: pd.DataFrame, since, until) -> int:
    return len(_in_window(chats, since, until))


def _window_counts(
    chats: pd.DataFrame, windows: list[tuple[pd.Timestamp, pd.Timestamp]]
) -> list[int]:
    starts = pd.DatetimeIndex(chats["started_at"]).as_unit("us").asi8  # sorted in a partition
    edges = pd.DatetimeIndex([w[0] for w in windows] + [w[1] for w in windows]).as_unit("us").asi8
    positions = np.searchsorted(starts, edges, side="left")
    lows, highs = positions[: len(windows)], positions[len(windows) :]
    return [int(n) for n in highs - lows]


def _span(chats: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    if chats.empty:
        return None
    return chats["started_at"].min(), chats["started_at"].max()


def _started_at(chats: pd.DataFrame, chat_ids: list[str]) -> pd.Series:
    found = chats[chats["chat_id"].isin(chat_ids)]
    return pd.Series(found["started_at"].to_numpy(), index=found["chat_id"].to_numpy())


def _staged(chats: pd.DataFrame, chat_ids: list[str]) -> set[str]:
    return set(chats.loc[chats["chat_id"].isin(chat_ids), "chat_id"])


# -- a window ----------------------------------------------------------------------------------------

# One Store (engine and pool) per worker process and URL: made from the values a task is given.
_worker_stores: dict[str, Store] = {}


def _store(url: SecretStr) -> Store:
    key = url.get_secret_value()
    store = _worker_stores.get(key)
    if store is None:
        store = _worker_stores[key] = Store(key)
    return store


def _prepare(
    partition: pd.DataFrame,
    since: pd.Timestamp,
    until: pd.Timestamp,
    index: Any,
    ctx: PlanContext,
    url: SecretStr,
    run_id: int,
    resumed: bool,
) -> Prepared | None:
    chats = _in_window(partition, since, until)
    if chats.empty:
        return None
    store = _store(url)
    chats = newest_versions(store, chats.reset_index(drop=True))
    if resumed:  # chats a partition of the interrupted run already wrote
        with store.engine.connect() as conn:
            done = writers.recorded_outcomes(conn, run_id, chats["chat_id"])
        chats = chats[~chats["chat_id"].isin(done)].reset_index(drop=True)
        if chats.empty:
            return None
    return prepare(chats, index, ctx)


def _candidates(
    prepared: Prepared | None, ctx: PlanContext, number: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What decide needs of a partition: its lead candidates and its phone candidates."""
    if prepared is None:
        return pd.DataFrame(), pd.DataFrame(columns=list(PHONE_CANDIDATE_COLUMNS))
    return prepared.lead_candidates().assign(_partition=number), prepared.phone_candidates(ctx)


class PartitionSink:
    """The sink of one partition's plan, on a worker: the plan applied in one transaction of its
    own, its write counts added to the run's in the store (partitions commit at once on several
    workers), and nothing written when the partition's outcomes are there already (Dask ran the
    task again: a lost worker)."""

    def __init__(self, store: Store, run_id: int) -> None:
        self.store, self.run_id = store, run_id
        self.written: WriteCounts | None = None  # None: nothing written (committed before)

    def apply(self, job: PlanWrite) -> None:
        plan = job.plan
        if not (plan.leads.empty and plan.phone_changes.empty and not plan.pool_states):
            # the window's leads, pools and phones are decided and written once, by the run
            raise ValueError("a partition's plan holds decisions of the whole window")
        with self.store.transaction() as conn:
            chats = job.plan.outcomes["chat_id"]  # (an erased chat has no row in plan.chats)
            if writers.recorded_outcomes(conn, self.run_id, chats.iloc[:1]):
                return  # this partition committed before (the task runs again)
            counts = apply_plan(conn, self.run_id, job)
            writers.add_write_counts(conn, self.run_id, counts)
            faults.point_once("partition_before_commit")
        self.written = counts

    def applied(self, chats: int) -> None:
        return None

    def commit(self) -> None:
        return None  # each plan commits as it is applied


def _write(
    prepared: Prepared | None, decisions: Decisions, ctx: PlanContext, url: SecretStr, run_id: int
) -> dict[str, int]:
    """Build a partition's rows and write them, with its counts, in one transaction."""
    if prepared is None:
        return {}
    plan = build_plan(prepared, decisions, ctx)
    sink = PartitionSink(_store(url), run_id)
    sink.apply(PlanWrite(plan, True, None, None, plan.chats["chat_id"]))
    return sink.written.as_dict() if sink.written is not None else {}


def process_windows(
    chunks: Chunks,
    client: Client,
    stage: DaskStage,
    windows: list[tuple[pd.Timestamp, pd.Timestamp]],
    finished: set[datetime],
    resumed: bool,
) -> None:
    """Each window: prepare on the workers, decide here, write on the workers, mark it done."""
    state = chunks.state
    planner = chunks.planner.get()
    url = state.settings.database_url
    if resumed and not planner.index.origins.empty:
        # leads the interrupted run created: when their chats started, to decide the chats that
        # come before them as the first time (etl.transform.plan._without_later_leads)
        starts = stage.started_at(planner.index.origins)
        planner.index.origin_starts = planner.index.origins.map(starts).dropna()
    # shipped once, as the value of a task rather than scattered: Dask keeps a task's definition
    # and runs it again if the worker holding its value dies, but a scattered value lost with its
    # last worker is gone for good (and the active memory manager trims a broadcast's replicas)
    index = client.submit(_value, planner.index, pure=False)
    ctx = client.submit(_value, planner.ctx, pure=False)
    counts = stage.window_counts(windows)
    for number, ((start, end), chats) in enumerate(zip(windows, counts, strict=True), start=1):
        if start in finished:
            continue
        if state.should_stop():
            raise RunStopped("stopped on request between windows")
        if chats:  # an empty window costs no task: it is only recorded as done
            _window(chunks, client, stage, start, end, index, ctx, url, resumed)
            # the partitions' counts are in the store
            state.counters.adopt(RunCounters.from_dict(state.store.counters(state.run_id)))
        chunks.window_done(number, len(windows), start, end, chats)


def _window(
    chunks: Chunks, client: Client, stage: DaskStage, start, end, index, ctx, url, resumed
) -> None:
    """One window with chats: prepare on the workers, decide here, write on the workers."""
    run_id = chunks.state.run_id
    began = time.perf_counter()
    prepared = [
        client.submit(_prepare, p, start, end, index, ctx, url, run_id, resumed, pure=False)
        for p in stage.partitions
    ]
    found = client.gather([client.submit(_candidates, p, ctx, n) for n, p in enumerate(prepared)])
    prepared_at = time.perf_counter()
    decisions = _decide(chunks, found)
    decided_at = time.perf_counter()
    faults.point("window_decided")  # crash tests: the window's leads are in, its rows not yet
    results = client.gather(
        [
            client.submit(_write, p, _share(decisions, found[n][0]), ctx, url, run_id,
                          pure=False, retries=2)
            for n, p in enumerate(prepared)
        ]
    )  # fmt: skip
    del prepared
    log.debug(
        "window written",
        extra={"event": "window_written", "run_id": run_id,
               "partitions_written": sum(1 for r in results if r),
               "prepare_s": round(prepared_at - began, 3), "decide_s": round(decided_at - prepared_at, 3),
               "write_s": round(time.perf_counter() - decided_at, 3)},
    )  # fmt: skip


def _decide(chunks: Chunks, found: list[tuple[pd.DataFrame, pd.DataFrame]]) -> Decisions:
    """The window's order-dependent decisions, made here and applied by the run's sink in one
    transaction: the leads, the pool pointers and the phone changes."""
    state = chunks.state
    leads = [c for c, _ in found if not c.empty]
    phones = [p for _, p in found if not p.empty]
    candidates = (
        pd.concat(leads, ignore_index=True).sort_values(["started_at", "chat_id"], kind="stable")
        if leads
        else pd.DataFrame(columns=["chat_id", "started_at", "email_normalized", "skip_reason"])
    )
    phone_rows = (
        pd.concat(phones, ignore_index=True)
        if phones
        else pd.DataFrame(columns=list(PHONE_CANDIDATE_COLUMNS))
    )
    applied = frozenset()
    if not phone_rows.empty:
        with state.store.engine.connect() as conn:
            applied = writers.applied_phone_changes(conn, phone_rows["chat_id"])
    planner = chunks.planner.get()
    decisions = planner.decide(candidates.reset_index(drop=True), phone_rows, applied)
    for warning in decisions.warnings:
        state.warn(warning)
    state.count_assignments(decisions.leads, decisions.assignments)
    nothing = pd.DataFrame()
    plan = ChunkPlan(
        chats=nothing, outcomes=nothing, activities=nothing, leads=decisions.leads,
        notes=nothing, notifications=nothing, phone_changes=decisions.phone_changes,
        pool_states=decisions.pool_states,
    )  # fmt: skip
    chunks.sink.apply(PlanWrite(plan, False, None, None, pd.Series([], dtype=object)))
    chunks.sink.commit()
    return decisions


def _share(decisions: Decisions, candidates: pd.DataFrame) -> Decisions:
    """What one partition needs of the window's decisions: those about its own candidates."""
    if candidates.empty:
        return decisions.for_chats(pd.Series([], dtype=object))
    return decisions.for_chats(candidates["chat_id"])
