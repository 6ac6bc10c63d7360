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
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from etl.contracts import Sink
from etl.extract.files import SourceFile
from etl.extract.rejects import Reject
from etl.extract.sell import RESOURCES, empty_frame, iter_sell_frames
from etl.load import writers
from etl.load.store import CRM_COLUMNS, INDEX_COLUMNS, Store
from etl.procs import (
    paused_gc,
    release_memory,
    release_memory_later,
    release_pending,
    worker_pool,
)
from etl.run.files import Todo, file_rows
from etl.run.state import RunState
from etl.stage.sell import SellStage, kept, read_part, spill
from etl.transform.sell import crm_after, diff, resolve_owners, with_email_keys
from etl.vocab import RunCounters

log = logging.getLogger("chatsell.pipeline")


@dataclass
class SellRead:
    """The Sell side of a run, read and checked before anything is written."""

    todo: Todo
    changes: dict[str, pd.DataFrame]  # index columns of the new or changed records
    exported_ids: dict[str, pd.Series]
    crm: dict[str, pd.DataFrame] | None  # None: unchanged, load it from the store when needed
    affected_emails: set[str]
    counts: dict[str, int]
    rejects: list[Reject]
    users: pd.DataFrame | None = None  # the Sell users once this snapshot is applied (owners)
    leads_confirmed: int = 0  # pushed leads this snapshot holds under their Sell id


def read_sell(
    state: RunState, sell_stage: SellStage, todo: Todo, pool: ProcessPoolExecutor | None
) -> SellRead:
    """Read the Sell files one at a time into the Sell stage; keep only the index columns.

    The full rows wait in the stage until ``send_sell``: at a million records they are the
    largest thing a run would otherwise hold.
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
        counts = {name: 0 for name in RESOURCES if name != "notes"}
        return SellRead(todo, {}, {}, None, set(), counts, rejects)
    exported = {name: sell_stage.index(name) for name in RESOURCES}
    exported = {
        name: frame if frame is not None else _empty_sell(name, match)
        for name, frame in exported.items()
    }
    counts = {name: len(frame) for name, frame in exported.items() if name != "notes" or len(frame)}
    # a lead chatsell pushed, back in the snapshot under its Sell id, is that same lead: the
    # store keeps the chat-created one (its activities, notes and changes; found by either id)
    pushed = store.pushed_leads()
    confirmed = 0
    if pushed:
        back = exported["leads"]["id"].isin(list(pushed))
        confirmed = int(back.sum())
        exported["leads"] = exported["leads"][~back.to_numpy()].reset_index(drop=True)
    # the diff needs only ids, hashes and emails of the store: the exported frames and the
    # whole stored CRM are never held at once (a --full run of a million records)
    keys = store.crm_frames(only=("sell_hash", "email_normalized"))
    keys["users"] = store.crm_frames(["users"])["users"]
    users_after = crm_after(keys, diff(keys, {"users": exported["users"]}))["users"]
    # hashes first: owners are resolved for the new and changed rows only (the hash is of the
    # record as exported; a --full re-read of an unchanged snapshot resolves nothing)
    delta = diff(keys, exported, track_emails=store.has_chats())
    delta.changes = resolve_owners(delta.changes, users_after)
    exported_ids = {name: frame["id"] for name, frame in exported.items()}
    del exported, keys
    return SellRead(
        todo=todo,
        changes=delta.changes,
        exported_ids=exported_ids,
        crm=crm_after(store.crm_frames(only=INDEX_COLUMNS), delta),
        affected_emails=delta.affected_emails,
        counts=counts,
        rejects=rejects,
        users=users_after,
        leads_confirmed=confirmed,
    )


def users_of(store: Store, crm: dict[str, pd.DataFrame] | None) -> pd.DataFrame:
    """The Sell users as this run's snapshot leaves them."""
    return crm["users"] if crm is not None else store.crm_frames(["users"])["users"]


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
               **{f"{k}_changed": len(v) for k, v in sell.changes.items()}},
    )  # fmt: skip
    deletes = {}
    if state.settings.sell.snapshot_is_complete and sell.todo:
        deletes = {
            resource: sell.exported_ids[resource].dropna().astype(int)
            for resource in ("leads", "contacts", "deals", "users")
        }
    parts = {resource: sell_stage.paths(resource) for resource in sell.changes}
    # the rows are read back from the stage's files: the writer needs only which versions won
    changes: dict[str, pd.DataFrame] | Path = {
        resource: frame[[c for c in ("id", "sell_hash") if c in frame.columns]]
        for resource, frame in sell.changes.items()
    }
    if getattr(sink, "elsewhere", False):  # a million ids and hashes to another process:
        spilled = sell_stage.directory / "changes.pickle"  # through a file, not a copy in memory
        with open(spilled, "wb") as out:
            pickle.dump((changes, deletes), out, protocol=pickle.HIGHEST_PROTOCOL)
        changes, deletes = spilled, {}
    sink.call(
        write_sell, state.run_id, changes, parts, sell.users, deletes,
        sell.affected_emails, file_rows(sell.todo, "sell"), counters,
    )  # fmt: skip


def write_sell(
    conn: Connection,
    run_id: int,
    changes: dict[str, pd.DataFrame] | Path,
    parts: dict[str, list[Path]],
    users: pd.DataFrame | None,
    deletes: dict[str, pd.Series],
    affected_emails: set[str],
    files: pd.DataFrame,
    counters: RunCounters,
) -> None:
    """The Sell snapshot's changed rows, its deletions and file marks, in one transaction.
    ``changes``: by resource, or a scratch file of (changes, deletes) the run wrote."""
    if isinstance(changes, Path):
        with open(changes, "rb") as spilled:
            changes, deletes = pickle.load(spilled)  # noqa: S301 - this run's scratch file
    for resource in list(changes):  # each resource's ids and hashes are freed once written
        changed = changes.pop(resource)
        for rows in _changed_rows(resource, parts.get(resource, []), changed, users):
            writers.apply_sell(conn, run_id, {resource: rows})
        del changed
    for resource, ids in deletes.items():
        writers.delete_missing(conn, resource, ids)
    writers.queue_rematch(conn, run_id, affected_emails)
    writers.mark_files(conn, run_id, files)
    writers.save_counters(conn, run_id, counters)
    release_memory()  # the writer goes on to the chats without the snapshot's pages


def _changed_rows(
    resource: str, parts: list[Path], changed: pd.DataFrame, users: pd.DataFrame | None
) -> Iterator[pd.DataFrame]:
    """The full rows of ``changed`` (id and sell_hash: the version that won), file by file."""
    if changed.empty:
        return
    # the winning hash of each changed id, found through one hash index built once (a merge
    # per file would hash all the changed rows again for every file: 50 files of leads)
    wanted = changed.drop_duplicates("id", keep="last")
    ids = pd.Index(wanted["id"].to_numpy())
    hashes = wanted["sell_hash"].to_numpy()
    written = np.zeros(len(ids), dtype=bool)
    for path in parts:
        with paused_gc():
            part = read_part(path)
        at = ids.get_indexer(part["id"].to_numpy())
        known = at >= 0
        wins = np.zeros(len(part), dtype=bool)
        wins[known] = hashes[at[known]] == part["sell_hash"].to_numpy()[known]
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
    release_pending()  # what the worker's last Sell file left of its heap
    rejects: list[Reject] = []
    parts = []
    with paused_gc():
        frames = iter_sell_frames([source], rejects, labels, encoding)
        for part, (resource, frame) in enumerate(frames):
            keyed = with_email_keys({resource: frame}, *rules)[resource]
            path = directory / f"{number:05d}_{part:04d}_{resource}.pickle"
            parts.append((resource, path, spill(keyed, path, _SELL_INDEX.get(resource))))
    release_memory_later()  # the columns returned are freed once sent: trimmed at the next file
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


def _empty_sell(resource: str, match) -> pd.DataFrame:
    keyed = with_email_keys(
        {resource: empty_frame(resource)}, match.provider_rules, match.strip_plus_tags
    )
    return kept(keyed[resource], _SELL_INDEX.get(resource))
