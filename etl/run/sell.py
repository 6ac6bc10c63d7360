"""The Sell snapshot stage: read the Sell exports, diff them against the store, and write what
changed (in one transaction, with the files' marks and the run's counters).

Read first, before any chat: the Sell users decide whether the configuration holds (an
integration user, pools' members), and a configuration error ends the run before anything is
written. The full rows wait in the Sell stage's scratch files until they are written; only the
index columns (ids, hashes, emails, owners) stay in memory.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from etl.contracts import Sink
from etl.extract.files import SourceFile
from etl.extract.rejects import Reject
from etl.extract.sell import RESOURCES, empty_frame, iter_sell_frames
from etl.load import writers
from etl.load.store import CRM_COLUMNS, INDEX_COLUMNS, Store
from etl.procs import paused_gc, release_memory, worker_pool
from etl.run.files import Todo, file_rows
from etl.run.planning import PlanCrm
from etl.run.state import RunState
from etl.stage.sell import SellStage, index_of, kept, read_part, spill, spill_index
from etl.transform.match import CrmIndex, build_index
from etl.transform.sell import (
    CompactTable,
    SellDelta,
    changed_emails,
    changed_rows,
    crm_after,
    deal_emails,
    diff,
    resolve_owners,
    with_email_keys,
)
from etl.vocab import RunCounters

log = logging.getLogger("chatsell.pipeline")


@dataclass
class SellRead:
    """The Sell side of a run, read and checked before anything is written."""

    todo: Todo
    rejects: list[Reject]
    users: pd.DataFrame | None = None  # the Sell users once this snapshot is applied (owners)
    exported_users: pd.DataFrame | None = None  # the users as exported (few: kept whole)
    # what ``index_sell`` finds: the rows new or changed (for the writer, in ``changes_file``)
    counts: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    affected_emails: set[str] = field(default_factory=set)
    leads_confirmed: int = 0  # pushed leads this snapshot holds under their Sell id
    changes_file: Path | None = None


def read_sell(
    state: RunState, sell_stage: SellStage, todo: Todo, pool: ProcessPoolExecutor | None
) -> SellRead:
    """Read the Sell files one at a time into the Sell stage, and the Sell users as this
    snapshot leaves them (what the configuration is checked against).

    The full rows and the kept (index) columns of leads, contacts and deals wait in the stage's
    files: ``index_sell`` diffs them in a process of its own, and this one never holds them.
    """
    store = state.store
    sell_settings = state.settings.sell
    match = state.settings.match
    rejects: list[Reject] = []
    read = functools.partial(
        _spill_sell_file,
        directory=sell_stage.directory,
        labels=sell_settings.csv_labels,
        encoding=sell_settings.encoding,
        rules=(tuple(match.provider_rules), match.strip_plus_tags),
    )
    items = list(enumerate(s for s, _ in todo))
    for parts, file_rejects in _map_files(read, items, state.settings.run.workers, pool):
        rejects.extend(file_rejects)
        for resource, path, index in parts:
            sell_stage.adopt(resource, path, index)
    if not todo:  # nothing read from Sell: the CRM is loaded only if chats need matching
        return SellRead(todo, rejects, counts={name: 0 for name in RESOURCES if name != "notes"})
    exported = sell_stage.index("users")
    if exported is None:
        exported = _empty_sell("users", (tuple(match.provider_rules), match.strip_plus_tags))
    stored = store.crm_frames(["users"])
    users = crm_after(stored, diff(stored, {"users": exported}))["users"]
    return SellRead(todo, rejects, users=users, exported_users=exported)


def users_of(store: Store, sell: SellRead) -> pd.DataFrame:
    """The Sell users as this run's snapshot leaves them."""
    return sell.users if sell.users is not None else store.crm_frames(["users"])["users"]


def index_sell(
    state: RunState,
    sell: SellRead,
    sell_stage: SellStage,
    fork: bool,
    then: Callable[[], None] = lambda: None,
) -> PlanCrm | None:
    """Diff the snapshot read against the store and build the match index from the CRM it
    leaves. ``fork``: in a process forked for it, which ends with it: a million records' ids,
    emails and hashes are Python strings, and a process that held them keeps many of their
    pages. This process receives the index (compact arrays, ``etl.transform.match``) and the
    counts; the writer reads the changed ids and hashes from ``sell.changes_file``. ``then``
    runs before the index is received (the chat workers fork while this process is small).
    None: no Sell file was read (the planner loads the store's CRM if chats need it)."""
    if not sell.todo:
        then()
        return None
    store = state.store
    match = state.settings.match
    changes_file = sell_stage.directory / "changes.pickle"
    sources = {name: sell_stage.index_sources(name) for name in RESOURCES if name != "users"}
    in_memory = store.dialect == "sqlite" and store.url.database in (None, "", ":memory:")
    fork = fork and not in_memory  # (another process cannot see an in-memory store)
    task = functools.partial(
        _index_task,
        store=store.url.render_as_string(False) if fork else store,
        sources=sources,
        exported_users=sell.exported_users,
        users=sell.users,
        rules=(tuple(match.provider_rules), match.strip_plus_tags),
        converted_statuses=list(match.converted_statuses),
        run_id=state.run_id,
        complete=state.settings.sell.snapshot_is_complete,
        changes_file=changes_file,
    )
    if fork:
        with worker_pool(1) as one:
            found = one.submit(task, index_file=sell_stage.directory / "index.pickle").result()
    else:
        found = task()
    then()
    if found.index is None:  # in the file the process wrote: read once ``then`` has run
        with open(sell_stage.directory / "index.pickle", "rb") as spilled:
            found.index = pickle.load(spilled)  # noqa: S301 - this run's scratch file
        os.unlink(sell_stage.directory / "index.pickle")
    sell.counts, sell.changed = found.counts, found.changed
    sell.affected_emails, sell.leads_confirmed = found.affected_emails, found.leads_confirmed
    sell.changes_file = changes_file
    return PlanCrm(found.index, sell.users, found.lowest_lead)


@dataclass
class _Indexed:
    """What ``_index_task`` gives back to the run (pickled from its process: all of it compact)."""

    counts: dict[str, int]
    changed: dict[str, int]
    affected_emails: set[str]
    leads_confirmed: int
    index: CrmIndex | None  # None: written to the task's ``index_file``
    lowest_lead: int


def _index_task(*, store: Store | str, index_file: Path | None = None, **work: Any) -> _Indexed:
    """The diff and the index (``index_sell``), where the run put it: ``_diff_and_index`` with
    ``work``. ``store``: the store, or its URL in a worker (which opens it for reading).
    ``index_file``: the index goes there."""
    own = isinstance(store, str)
    store = Store(store) if own else store
    try:
        with paused_gc():
            found = _diff_and_index(store, **work)
        if index_file is not None:
            with open(index_file, "wb") as out:
                pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
                # no memo: it would hold each packed column until the whole index is written
                # (the index has no cycles, and shares its emails in its own reduce)
                pickler.fast = True
                pickler.dump(found.index)
            found.index = None
        return found
    finally:
        if own:
            store.dispose()


def _diff_and_index(
    store: Store,
    *,
    sources: dict[str, list],
    exported_users: pd.DataFrame,
    users: pd.DataFrame,
    rules: tuple[tuple[str, ...], bool],
    converted_statuses: list[str],
    run_id: int | None,
    complete: bool,
    changes_file: Path,
) -> _Indexed:
    """``sources``: the snapshot's kept columns by resource (``SellStage.index_sources``);
    ``users``: the Sell users once it is applied.

    One resource at a time: its exported columns against the store's ids, hashes and emails of
    that table only (a --full run of a million records held all of both at once), then the
    index from the CRM as the snapshot leaves it."""
    track = store.has_chats()
    # a lead chatsell pushed, back in the snapshot under its Sell id, is that same lead: the
    # store keeps the chat-created one (its activities, notes and changes; found by either id)
    pushed = store.pushed_leads()
    confirmed = 0
    counts: dict[str, int] = {}
    changes: dict[str, pd.DataFrame] = {}
    affected: set[str] = set()
    deletes: dict[str, np.ndarray] = {}
    contacts = None  # the store's contact ids and emails (the deals' contacts' emails)
    for name in RESOURCES:
        if name == "users":
            frame = exported_users
        else:
            frame = index_of(sources[name]) if sources[name] else _empty_sell(name, rules)
        if name != "notes" or len(frame):
            counts[name] = len(frame)
        if name == "leads" and pushed:
            back = frame["id"].isin(list(pushed))
            confirmed = int(back.sum())
            frame = frame[~back.to_numpy()].reset_index(drop=True)
        table = "sell_notes" if name == "notes" else name
        only = None if name == "users" else ("sell_hash", "email_normalized")
        if name == "leads":  # the exported leads' hashes, not the leads made from chats (no
            # Sell id, no hash: never an exported row's), nor emails: 1.69M leads at 3M chats
            keys = store.crm_frames([table], only=("sell_hash",), hashed=True)[table]
        else:
            keys = store.crm_frames([table], only=only)[table]
        # hashes first: owners are resolved for the new and changed rows only (the hash is of
        # the record as exported; a --full re-read of an unchanged snapshot resolves nothing)
        changes[name] = changed_rows(frame, keys)
        if track:
            affected |= changed_emails(name, changes[name])
        if complete and name in ("leads", "contacts", "deals", "users"):
            deletes[name] = frame["id"].dropna().to_numpy(dtype="int64")
        if name == "contacts" and track:
            contacts = keys[["id", "email_normalized"]]
        del frame, keys
    if track:
        affected |= deal_emails(changes, contacts)
    del contacts
    changes = resolve_owners(changes, users)
    _write_changes(changes_file, changes, deletes)
    del deletes
    for frame in changes.values():  # written: the index needs none of these
        for name in ("sell_hash", "owner_ref", "updated_at"):
            if name in frame.columns:
                del frame[name]
    changed = {name: len(frame) for name, frame in changes.items()}
    release_memory()  # the diff's frames, before the index is built beside what they left
    # the CRM as the snapshot leaves it: the few tables as frames, the leads and contacts a
    # column at a time (``CompactTable``), each let go as the index takes it
    few = ("deals", "users", "lead_conversions")
    crm = crm_after(
        store.crm_frames(few, only=INDEX_COLUMNS),
        SellDelta({name: changes[name] for name in few}, affected),
    )
    people = {}
    for name in ("leads", "contacts"):
        # (the origin chats of the leads this run created, if it is resumed, are read alone)
        only = INDEX_COLUMNS - {"origin_chat_id"}
        stored, rows = store.crm_compact(name, only)
        people[name] = CompactTable(name, stored, rows, changes.pop(name))
    del changes
    chat_leads = people["leads"]["id"].dropna()
    lowest = int(chat_leads.min()) if not chat_leads.empty else 0
    index = build_index(
        people["leads"], people["contacts"], crm["deals"], crm["users"], crm["lead_conversions"],
        converted_statuses, run_id=run_id, consume=True,
    )  # fmt: skip
    if run_id is not None:
        index.origins = store.run_origins(run_id)
    return _Indexed(counts, changed, affected, confirmed, index, lowest)


def _write_changes(
    path: Path, changes: dict[str, pd.DataFrame], deletes: dict[str, np.ndarray]
) -> None:
    """The changed rows' ids and hashes (the versions that won), and the ids a complete snapshot
    keeps, for the writer: arrays, not a million Python objects in the writer too."""
    compact = {}
    for resource, frame in changes.items():
        if "sell_hash" not in frame.columns or frame.empty:
            compact[resource] = (np.zeros(0, dtype="int64"), np.zeros(0, dtype="S1"))
            continue
        hashes = frame["sell_hash"].to_numpy(dtype=object)
        compact[resource] = (frame["id"].to_numpy(dtype="int64"), _hash_bytes(hashes))
    with open(path, "wb") as out:
        pickle.dump((compact, deletes), out, protocol=pickle.HIGHEST_PROTOCOL)


def _hash_bytes(hashes: np.ndarray) -> np.ndarray:
    """Hashes (hex text, an object array) as a fixed-width bytes array (cast in C)."""
    return hashes.astype(bytes)


def send_sell(
    state: RunState, sink: Sink, sell: SellRead, sell_stage: SellStage, resumed: bool
) -> None:
    """Count the snapshot and give its writes to the sink (a writer process writes them while
    this process stages the chats)."""
    counters = state.counters
    if not resumed or not counters.inputs.sell_records:
        counters.inputs.sell_records = {k: int(v) for k, v in sell.counts.items()}
        counters.inputs.leads_confirmed = sell.leads_confirmed
    log.info(
        "sell snapshot read",
        extra={"event": "sell_loaded", "run_id": state.run_id,
               **{f"{k}_changed": v for k, v in sell.changed.items()}},
    )  # fmt: skip
    parts = {resource: sell_stage.paths(resource) for resource in sell.changed}
    # the rows are read back from the stage's files: the writer needs only which versions won
    sink.call(
        write_sell, state.run_id, sell.changes_file, parts, sell.users,
        sell.affected_emails, file_rows(sell.todo, "sell"), counters,
    )  # fmt: skip


def write_sell(
    conn: Connection,
    run_id: int,
    changes_file: Path | None,
    parts: dict[str, list[Path]],
    users: pd.DataFrame | None,
    affected_emails: set[str],
    files: pd.DataFrame,
    counters: RunCounters,
) -> None:
    """The Sell snapshot's changed rows, its deletions and file marks, in one transaction.
    ``changes_file``: the changed ids and hashes by resource, and the ids a complete snapshot
    keeps (``_write_changes``); None when no Sell file was read."""
    changes, deletes = {}, {}
    if changes_file is not None:
        with open(changes_file, "rb") as spilled:
            changes, deletes = pickle.load(spilled)  # noqa: S301 - this run's scratch file
    for resource in list(changes):  # each resource's ids and hashes are freed once written
        ids, hashes = changes.pop(resource)
        for rows in _changed_rows(resource, parts.get(resource, []), ids, hashes, users):
            writers.apply_sell(conn, run_id, {resource: rows})
        del ids, hashes
    for resource, ids in deletes.items():
        writers.delete_missing(conn, resource, pd.Series(ids, dtype="int64"))
    writers.queue_rematch(conn, run_id, affected_emails)
    writers.mark_files(conn, run_id, files)
    writers.save_counters(conn, run_id, counters)
    release_memory()  # the writer goes on to the chats without the snapshot's pages


def _changed_rows(
    resource: str,
    parts: list[Path],
    ids: np.ndarray,
    hashes: np.ndarray,
    users: pd.DataFrame | None,
) -> Iterator[pd.DataFrame]:
    """The full rows of the changed ``ids`` (with ``hashes``: the version that won), file by
    file."""
    if len(ids) == 0:
        return
    # the winning hash of each changed id, found through one hash index built once (a merge
    # per file would hash all the changed rows again for every file: 50 files of leads)
    last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]  # (the last of an id)
    if len(last) < len(ids):
        last.sort()
        ids, hashes = ids[last], hashes[last]
    index = pd.Index(ids)
    written = np.zeros(len(ids), dtype=bool)
    for path in parts:
        with paused_gc():
            part = read_part(path)
        at = index.get_indexer(part["id"].to_numpy(dtype="int64", na_value=-1))
        known = at >= 0
        wins = np.zeros(len(part), dtype=bool)
        if known.any():
            mine = _hash_bytes(part["sell_hash"].to_numpy(dtype=object)[known])
            wins[known] = hashes[at[known]] == mine
        wins[known] &= ~written[at[known]]
        if not wins.any():
            continue
        written[at[wins]] = True
        rows = part[wins]
        if users is not None:
            rows = resolve_owners({resource: rows}, users)[resource]
        yield rows


def _spill_sell_file(
    item: tuple[int, SourceFile],
    *,
    directory: Path,
    labels: dict[str, str],
    encoding: str | None,
    rules: tuple[tuple[str, ...], bool],
) -> tuple[list[tuple[str, Path, pd.DataFrame]], list[Reject]]:
    """One Sell file, typed and keyed, each resource spilled to the Sell stage's directory:
    (resource, path, kept columns) per resource, and the file's rejects. Runs in a worker."""
    number, source = item
    rejects: list[Reject] = []
    parts = []
    with paused_gc():
        frames = iter_sell_frames([source], rejects, labels, encoding)
        for part, (resource, frame) in enumerate(frames):
            keyed = with_email_keys({resource: frame}, *rules)[resource]
            del frame
            path = directory / f"{number:05d}_{part:04d}_{resource}.pickle"
            index: pd.DataFrame | Path = spill(keyed, path, _SELL_INDEX.get(resource))
            del keyed
            if resource != "users":  # (the users stay with the run: configuration is checked
                index = spill_index(index, path)  # against them before the diff)
            parts.append((resource, path, index))
    release_memory()  # what the file's typing left: the worker waits idle for the diff next
    return parts, rejects


def _map_files(
    fn: Callable, items: list, workers: int, pool: ProcessPoolExecutor | None = None
) -> Iterator:
    """``fn`` over ``items``, results in order: in ``workers`` forked processes when there are
    several files (as the chat files are read), else here. ``pool``: the run's workers."""
    if workers <= 1 or len(items) < 2:
        yield from map(fn, items)
        return
    if pool is not None:
        yield from pool.map(fn, items)
        return
    with worker_pool(workers) as own:
        yield from own.map(fn, items)


# What a run keeps of the exported Sell records before writing them: the columns the store's
# CRM frames have (matching, diffs), plus what owners and the newest version are decided by.
# Users are few and kept whole.
_SELL_INDEX: dict[str, tuple[str, ...]] = {
    name: (*CRM_COLUMNS["sell_notes" if name == "notes" else name], "owner_ref", "updated_at")
    for name in ("leads", "contacts", "deals", "notes", "lead_conversions")
}


def _empty_sell(resource: str, rules: tuple[tuple[str, ...], bool]) -> pd.DataFrame:
    """``rules``: (provider_rules, strip_plus_tags)."""
    keyed = with_email_keys({resource: empty_frame(resource)}, *rules)
    return kept(keyed[resource], _SELL_INDEX.get(resource))
