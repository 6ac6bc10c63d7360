"""The planning and apply stage: the staged chats, chunk by chunk in the one stable order,
planned and given to the sink; a backfill window by window; then the chats already stored
whose email gained a record (the rematch).

A chunk's plan commits with its outcomes and the run's counters, ``[run] commit_size`` chats to
a transaction. ``should_stop`` is asked between chunks: the run then stops after what it applied
has committed, and the next run with the same inputs goes on from there.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from etl.contracts import Sink, Stage
from etl.errors import RunStopped
from etl.load import writers
from etl.load.store import Store
from etl.run.planning import LazyPlanner
from etl.run.state import RunState
from etl.stage.versions import is_newer
from etl.vocab import CHAT_COLUMNS, ChunkPlan, PlanWrite

log = logging.getLogger("chatsell.pipeline")

REMATCH_EMAILS = 5_000  # emails of the rematch queue planned at a time


class Chunks:
    """Plans the staged chats and applies the plans through ``sink``."""

    def __init__(self, state: RunState, sink: Sink, planner: LazyPlanner) -> None:
        self.state, self.sink, self.planner = state, sink, planner
        # tables that held no row when the range being processed began (``process_range``)
        self._empty: frozenset[str] = frozenset()

    # -- a sync, or a backfill window by window ------------------------------------------------

    def process(self, stage: Stage, resumed: bool) -> None:
        state = self.state
        run_id = state.run_id
        done = state.store.done_chat_ids(run_id) if resumed and run_id is not None else set()
        if not state.options.backfill:
            self.process_range(stage, None, None, done)
            return
        windows = backfill_windows(stage, state.options.since, state.options.until,
                                   state.options.window)  # fmt: skip
        finished = state.store.finished_windows(run_id) if resumed and run_id is not None else set()
        for number, (start, end) in enumerate(windows, start=1):
            if start in finished:
                continue
            chats = self.process_range(stage, start, end, done)
            self.window_done(number, len(windows), start, end, chats)

    def window_done(
        self, number: int, of: int, start: pd.Timestamp, end: pd.Timestamp, chats: int
    ) -> None:
        """Record a backfill window as finished (``--resume`` goes on after it)."""
        state = self.state
        self.sink.call(
            _finish_window, state.run_id, start.to_pydatetime(), end.to_pydatetime(), chats
        )
        self.sink.commit()
        state.progress("backfill", number, of)
        log.info(
            "window done",
            extra={"event": "window", "run_id": state.run_id, "window_start": start.isoformat(),
                   "window_end": end.isoformat(), "chats": chats, "window": number, "windows": of},
        )  # fmt: skip

    def process_range(
        self,
        stage: Stage,
        since: pd.Timestamp | None,
        until: pd.Timestamp | None,
        done: set[str],
    ) -> int:
        """Plan and apply the staged chats started in [since, until), chunk by chunk."""
        state, sink, store = self.state, self.sink, self.state.store
        total = state.counters.inputs.chats_staged
        since = since if since is not None else state.options.since
        until = until if until is not None else state.options.until
        processed = 0
        # a chat is staged once (its newest version) and planned in one chunk: when the store
        # holds no chat (no phone change) as the range begins, no chunk finds one of its own
        # there, and none is looked up (a first sync of a million chats: ~6 s of this process)
        self._empty = store.empty_tables(["chats", "field_changes"])
        try:
            for chunk in stage.chunks(state.settings.run.chunk_size, since, until):
                if state.should_stop():
                    sink.commit()  # what was applied is kept; the next run goes on
                    raise RunStopped("stopped on request between chunks")
                processed += len(chunk)
                stored = (
                    _none_stored()
                    if "chats" in self._empty
                    else store.chat_versions(chunk["chat_id"])
                )
                chunk = newest_versions(store, chunk, stored)
                if done:
                    chunk = chunk[~chunk["chat_id"].isin(done)]
                if not chunk.empty:
                    self.plan_and_apply(chunk, record_outcomes=True, stored=stored)
                    sink.applied(len(chunk))
                state.progress("sync", processed, total)
                log.info(
                    "chunk applied",
                    extra={"event": "chunk", "run_id": state.run_id, "chats": processed},
                )
        except BaseException:
            sink.abort()
            raise
        finally:
            self._empty = frozenset()
        sink.commit()
        return processed

    # -- one chunk -------------------------------------------------------------------------------

    def plan_and_apply(
        self,
        chats: pd.DataFrame,
        record_outcomes: bool,
        clear_emails: set[str] | None = None,
        stored: pd.DataFrame | None = None,
    ) -> None:
        """``stored``: what ``Store.chat_versions`` gave for these chats, if read already. A chat
        the store does not hold has no activities yet: they are not looked up."""
        plan = self.plan(chats, record_outcomes, stored)
        for warning in plan.warnings:
            self.state.warn(warning)
        self.state.count_assignments(plan.leads, plan.assignments)
        held = plan.chats["chat_id"]
        if stored is not None:  # activities are written with their chat: a new chat has none
            held = held[held.isin(set(stored["chat_id"]))]
        self.sink.apply(PlanWrite(plan, record_outcomes, clear_emails, stored, held))

    def plan(
        self, chats: pd.DataFrame, record_outcomes: bool, stored: pd.DataFrame | None = None
    ) -> ChunkPlan:
        """A chunk's plan (phone changes already made to these chats are not made again).
        ``stored``: ``Store.chat_versions`` of these chats; a chat whose plan key is the stored
        one is then planned without rows (``etl.transform.plankey``)."""
        applied: frozenset[tuple[str, int, str]] = frozenset()
        if "field_changes" not in self._empty:
            with self.state.store.engine.connect() as conn:
                applied = writers.applied_phone_changes(conn, chats["chat_id"])
        keys = None
        if stored is not None and record_outcomes and not stored.empty:
            keys = pd.Series(
                stored["plan_key"].to_numpy(dtype=np.int64), index=stored["chat_id"].to_numpy()
            )
        return self.planner.get().plan(
            chats, record_outcomes=record_outcomes, applied_changes=applied, stored_keys=keys
        )

    # -- the rematch -----------------------------------------------------------------------------

    def rematch(self, stage: Stage, emails: set[str]) -> None:
        """Chats already in the store whose email gained a record (a new lead, contact or deal):
        attach them too, so every card shows every chat of its email (seed S1). ``emails``: the
        store's rematch queue (a dry run's: the emails the Sell snapshot changed)."""
        if not emails:
            return
        store, sink = self.state.store, self.sink
        ordered = sorted(emails)
        for start in range(0, len(ordered), REMATCH_EMAILS):
            part = set(ordered[start : start + REMATCH_EMAILS])
            chats = store.chats_by_email(part, list(CHAT_COLUMNS))
            chats = chats[~chats["chat_id"].isin(stage.staged(chats["chat_id"]))]
            chats = chats.sort_values(["started_at", "chat_id"], kind="stable").reset_index(
                drop=True
            )
            if chats.empty:
                sink.call(writers.clear_rematch, part)
                continue
            self.state.counters.inputs.chats_rematched += len(chats)
            self.plan_and_apply(chats, record_outcomes=False, clear_emails=part)
            sink.commit()


def _finish_window(conn, run_id: int, start: datetime, end: datetime, chats: int) -> None:
    writers.finish_window(conn, run_id, start, end, chats)  # (looked up when the sink calls it)


def backfill_windows(
    stage: Stage,
    since: datetime | None,
    until: datetime | None,
    window: timedelta | None,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[since, until) cut into windows; without bounds, from the first to the last chat staged."""
    span = stage.span()
    low = pd.Timestamp(since) if since is not None else (span[0] if span else None)
    high = pd.Timestamp(until) if until is not None else None
    if high is None and span is not None:
        high = span[1] + pd.Timedelta(microseconds=1)
    if low is None or high is None or low >= high:
        return []
    step = pd.Timedelta(window or timedelta(days=1))
    edges = list(pd.date_range(low, high, freq=step))
    if edges[-1] < high:
        edges.append(high)
    return list(zip(edges[:-1], edges[1:], strict=True))


def newest_versions(
    store: Store, chunk: pd.DataFrame, stored: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The newest version of each chat: the staged one, or the store's when that is newer
    (``etl.stage.versions``: a version wins only when strictly newer).

    ``stored``: ``store.chat_versions`` of the chunk, when the caller read it already.
    """
    if stored is None:
        stored = store.chat_versions(chunk["chat_id"])
    if stored.empty:
        return chunk
    compare = chunk[["chat_id", "version"]].merge(stored, on="chat_id", suffixes=("", "_stored"))
    newer = compare.loc[is_newer(compare["version_stored"], compare["version"]), "chat_id"]
    if newer.empty:
        return chunk
    kept = store.stored_chats(newer, list(CHAT_COLUMNS))
    chunk = pd.concat(
        [chunk[~chunk["chat_id"].isin(set(newer))], kept[list(CHAT_COLUMNS)]], ignore_index=True
    )
    return chunk.sort_values(["started_at", "chat_id"], kind="stable").reset_index(drop=True)


def _none_stored() -> pd.DataFrame:
    """``Store.chat_versions`` of chats the store does not hold."""
    return pd.DataFrame(columns=["chat_id", "version", "email_normalized", "plan_key"])
