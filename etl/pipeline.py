"""A sync, start to end: extract -> transform -> load -> report. Sequencing only.

Every write of a run commits in a transaction that also records the progress it covers: the
Sell snapshot with its file marks; each chunk of chats with its outcomes, leads, pool pointers
and the run's counters; the run's end with the chat files it loaded. A run killed at any point
is resumed by the next run with the same inputs, which skips the chats already accounted for.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from etl.config import Settings
from etl.errors import ChatsellError, ConfigError, RunStopped
from etl.extract.chats import CHAT_COLUMNS
from etl.extract.files import SourceFile, discover, fingerprint
from etl.extract.rejects import Reject
from etl.extract.sell import RESOURCES, empty_frame, iter_sell_frames
from etl.load import writers
from etl.load.planwriter import (
    InlineWriter,
    PlanWrite,
    ProcessWriter,
    release_memory,
    write_plan,
)
from etl.load.stage import (
    ChatStage,
    SellStage,
    fill,
    kept,
    read_part,
    remove_orphans,
    spill,
    worker_pool,
)
from etl.load.store import CRM_COLUMNS, Store
from etl.report.build import add_counts, build_report, empty_counters
from etl.report.digest import LIST_LIMIT, OutcomeDigest
from etl.report.files import write_report_files
from etl.transform.assign import PoolState, build_assigner, resolve_user
from etl.transform.match import build_index
from etl.transform.plan import (
    ChunkPlan,
    LeadPolicy,
    PhonePolicy,
    PlanContext,
    Planner,
    agent_user_map,
    assignment_counts,
)
from etl.transform.sell import crm_after, diff, resolve_owners, with_email_keys

log = logging.getLogger("chatsell.pipeline")


@dataclass(frozen=True)
class SyncOptions:
    chats: Path
    sell: Path
    full: bool = False
    dry_run: bool = False
    mode: str = "sync"  # or "backfill"
    report_dir: Path | None = None
    create_leads: bool = True
    notify: bool = True
    since: datetime | None = None  # backfill: chats started in [since, until)
    until: datetime | None = None
    window: timedelta | None = None  # backfill: each window commits on its own
    resume: bool = False  # backfill: continue the last unfinished backfill of these inputs
    engine: str = "local"  # backfill: "dask" runs it on Dask distributed (etl.dask_engine)
    dask_scheduler: str | None = None  # a running cluster's scheduler; None: a LocalCluster
    dask_workers: int | None = None  # worker processes of that LocalCluster
    # keep the leads the run creates for RunResult.leads (library callers); the CLI does not:
    # at 3M chats they are ~370k rows held to the end of the run for nobody
    collect_leads: bool = True

    @property
    def backfill(self) -> bool:
        return self.mode == "backfill"


@dataclass
class RunResult:
    run_id: int | None
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    leads: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # leads this run created (or would, dry)


Progress = Callable[[str, int, int | None], None]


def _no_progress(_stage: str, _done: int, _total: int | None) -> None:
    return None


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
        chat_files = _discover(options.chats, "--chats")
        sell_files = _discover(options.sell, "--sell")
        with store.lock() as holder:
            run = _Run(
                settings, options, store, holder, now or datetime.now(UTC), progress, should_stop
            )
            return run.execute(chat_files, sell_files)
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


def _discover(path: Path, option: str) -> list[SourceFile]:
    try:
        return discover(path)
    except FileNotFoundError:
        raise ConfigError(f"{option}: no such file or directory: {path}") from None


@dataclass
class _SellRead:
    """The Sell side of a run, read and checked before anything is written."""

    todo: list[tuple[SourceFile, str]]
    changes: dict[str, pd.DataFrame]  # index columns of the new or changed records
    exported_ids: dict[str, pd.Series]
    crm: dict[str, pd.DataFrame] | None  # None: unchanged, load it from the store when needed
    affected_emails: set[str]
    counts: dict[str, int]
    rejects: list[Reject]
    users: pd.DataFrame | None = None  # the Sell users once this snapshot is applied (owners)


class _Run:
    def __init__(
        self,
        settings: Settings,
        options: SyncOptions,
        store: Store,
        holder: dict[str, object],
        now: datetime,
        progress: Progress,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.should_stop = should_stop
        self.settings = settings
        self.options = options
        self.store = store
        self.holder = holder
        self.now = now
        self.progress = progress
        self.dry_run = options.dry_run
        self.mode = "dry-run" if options.dry_run else options.mode
        self.run_id: int | None = None
        self.counters = empty_counters()
        self.started_at = now
        self.dry_outcomes: dict[str, int] = {}
        self.dry_multi: set[str] = set()
        self.planned_leads: list[pd.DataFrame] = []
        self._planner_obj: Planner | None = None
        self.crm: dict[str, pd.DataFrame] | None = None
        self.dry_digest = OutcomeDigest()  # a dry run's report page, chunk by chunk
        self.reject_frame = pd.DataFrame()
        self.writer: ProcessWriter | None = None
        self.pool: ProcessPoolExecutor | None = None  # the parsing workers, Sell then chats

    # -- the run --------------------------------------------------------------------------------

    def execute(self, chat_files: list[SourceFile], sell_files: list[SourceFile]) -> RunResult:
        orphans = remove_orphans()
        if orphans:
            log.info(
                "removed %d scratch directories of killed runs", len(orphans),
                extra={"event": "scratch_removed", "paths": [str(p) for p in orphans]},
            )  # fmt: skip
        try:
            with SellStage() as sell_stage:
                self.sell_stage = sell_stage
                if self.options.engine == "dask":
                    from etl.dask_engine import dask_client

                    with dask_client(self.options.dask_scheduler, self.options.dask_workers) as c:
                        self.client = c
                        return self._execute(None, chat_files, sell_files)
                with ChatStage() as stage:
                    return self._execute(stage, chat_files, sell_files)
        finally:
            self._close_pool()
            if self.writer is not None:
                self.writer.close()
                self.store.reading_only(False)

    def _writer_process(self, work: bool) -> ProcessWriter | None:
        """The writer, forked now while this process is small; None where the run writes here:
        nothing to read (an unchanged sync), a dry run (nothing is written), Dask (its workers
        write), an in-memory store (another process cannot see it), ``write_process = false``."""
        store = self.store
        in_memory = store.dialect == "sqlite" and store.url.database in (None, "", ":memory:")
        if (
            not work
            or self.dry_run
            or self.options.engine == "dask"
            or in_memory
            or not self.settings.run.write_process
        ):
            return None
        # no SQLite connection crosses the fork: its locks and WAL index are not the child's
        # (a child that inherits them can be told, by this process closing its last
        # connection, that the WAL is gone while it writes). A server connection is left: the
        # run's lock is held on one, and the child never touches what it inherits (gc.freeze)
        if store.dialect == "sqlite":
            store.dispose()
        writer = ProcessWriter(store.url.render_as_string(hide_password=False)).start()
        store.reading_only()  # the writer writes the chunks; this process mostly reads
        return writer

    def _close_pool(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pool.shutdown(cancel_futures=True)

    def _stop_writer(self) -> None:
        """End the writer process after what it is writing, nothing committed that was not."""
        if self.writer is not None:
            self.writer.abort()

    def _execute(
        self, stage: ChatStage | None, chat_files: list[SourceFile], sell_files: list[SourceFile]
    ) -> RunResult:
        known = self.store.source_files()
        # a backfill reads every chat file and takes its window from them; sync reads what is new
        chat_todo = self._changed(chat_files, known, "chat", force=self.options.backfill)
        force_sell = self.settings.sell.snapshot_is_complete
        sell_todo = self._changed(sell_files, known, "sell", force=force_sell)
        # the writer and then the parsing workers fork while this process is small: the
        # workers on their first file (Sell's), and they stay for the chat files
        self.writer = self._writer_process(bool(chat_todo or sell_todo))
        workers = self.settings.run.workers
        if workers > 1 and stage is not None:
            self.pool = worker_pool(workers)
        started = time.perf_counter()
        sell = self._read_sell(sell_todo)
        release_memory()  # the diff's frames are gone; their pages go back to the system
        log.info(
            "sell read",
            extra={"event": "sell_read", "sell_files": len(sell_todo),
                   "seconds": round(time.perf_counter() - started, 2)},
        )  # fmt: skip
        self.crm, sell.crm = sell.crm, None  # the run holds the CRM frames once, until indexed
        users = (
            self.crm["users"] if self.crm is not None else self.store.crm_frames(["users"])["users"]
        )
        self._configure(users)  # configuration errors end the run here, before any write
        resumed = False
        if not self.dry_run:
            if self.options.backfill:
                policy = "unfinished" if self.options.resume else "never"
            else:
                policy = "interrupted"
            self.run_id, resumed = self.store.begin_run(
                self.mode, self._input_key(), self._options(), self.holder, resume=policy
            )
            if resumed:
                self.counters = self.store.counters(self.run_id) or empty_counters()
            elif self.options.resume:
                self.warn(
                    "nothing to resume: no unfinished backfill of these inputs; starting anew"
                )
        log.info(
            "run started",
            extra={"event": "run_started", "run_id": self.run_id, "mode": self.mode, "resumed": resumed,
                   "store": self.store.display_url, "chat_files": len(chat_todo), "sell_files": len(sell.todo)},
        )  # fmt: skip
        try:
            # the writer writes the Sell snapshot while the workers read the chats
            self._write_sell(sell, resumed)
            sell.changes, sell.exported_ids = {}, {}  # sent: only the match index is kept
            staging = time.perf_counter()
            stage = self._stage_chats(stage, chat_todo)
            log.info(
                "chats staged",
                extra={"event": "chats_staged", "chat_files": len(chat_todo),
                       "seconds": round(time.perf_counter() - staging, 2)},
            )  # fmt: skip
            self._record_inputs(stage, chat_todo, sell.rejects)
            self._process(stage, resumed)
            self._sync_writer()  # all it was sent is committed; the rest is written here
            self.sell_stage.close()  # (the writer read the Sell rows from it)
            self._rematch(stage, sell.affected_emails)
            report = self._finish(chat_todo)
        except RunStopped:
            log.warning(
                "run stopped; the next run with the same inputs resumes it",
                extra={"event": "run_stopped", "run_id": self.run_id},
            )
            raise
        except ChatsellError as exc:
            self._stop_writer()
            self._fail(str(exc))
            raise
        except Exception as exc:
            self._stop_writer()
            self._fail(f"{type(exc).__name__}: {exc}")
            raise
        log.info(
            "run finished",
            extra={"event": "run_finished", "run_id": self.run_id, "status": report["status"],
                   "chats_read": report["accounting"]["chats_read"], "balanced": report["accounting"]["balanced"],
                   "rejects": report["rejects"], **report["writes"]},
        )  # fmt: skip
        self._write_report_files(report)
        leads = (
            pd.concat(self.planned_leads, ignore_index=True)
            if self.planned_leads
            else pd.DataFrame()
        )
        return RunResult(self.run_id, report, report["warnings"], leads)

    def _changed(
        self,
        files: list[SourceFile],
        known: dict[str, tuple[int, int, str]],
        kind: str,
        force: bool = False,
    ) -> list[tuple[SourceFile, str]]:
        """Files not loaded before or changed since (size and mtime, then content hash)."""
        todo = []
        reread = self.options.full or force
        dirs: dict[str, str] = {}
        for source in files:
            seen = known.get(_key(source, dirs))
            if seen and not reread and seen[0] == source.size and seen[1] == source.mtime_ns:
                continue
            sha = fingerprint(source.path)
            if seen and not reread and seen[2] == sha:
                continue
            todo.append((source, sha))
        log.debug("%s files to read: %d of %d", kind, len(todo), len(files))
        return todo

    def _input_key(self) -> str:
        options = self.options
        material = [self.mode, str(options.chats.resolve()), str(options.sell.resolve()), options.full,
                    options.create_leads, options.notify, str(options.since), str(options.until),
                    str(options.window)]  # fmt: skip
        return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:32]

    def _options(self) -> dict[str, Any]:
        options = self.options
        out = {"chats": str(options.chats), "sell": str(options.sell), "full": options.full,
               "create_leads": options.create_leads, "notify": options.notify}  # fmt: skip
        if options.backfill:
            out.update(
                since=str(options.since), until=str(options.until), window=str(options.window)
            )
        return out

    # -- configuration checked against the Sell users --------------------------------------------

    def _configure(self, users: pd.DataFrame) -> None:
        states = {
            row["pool"]: PoolState.from_row(row["pointer"], row["state"], row["assigned"])
            for row in self.store.pool_rows()
        }
        self.assigner = build_assigner(self.settings.assignment, users, states)
        self.integration_user_id = None
        ref = self.settings.sell.integration_user
        if ref is not None:
            self.integration_user_id, _active = resolve_user(ref, users)
            if self.integration_user_id is None:
                raise ConfigError(f"[sell] integration_user: {ref!r} is no Sell user")

    # -- Sell -----------------------------------------------------------------------------------

    def _read_sell(self, todo: list[tuple[SourceFile, str]]) -> _SellRead:
        """Read the Sell files one at a time into the Sell stage; keep only the index columns.

        The full rows wait in the stage until ``_write_sell``: at a million records they are the
        largest thing a run would otherwise hold.
        """
        sell_settings = self.settings.sell
        match = self.settings.match
        rejects: list[Reject] = []
        read = functools.partial(
            _spill_sell_file,
            directory=self.sell_stage.directory,
            labels=sell_settings.csv_labels,
            encoding=sell_settings.encoding,
            rules=(tuple(match.provider_rules), match.strip_plus_tags),
        )
        items = list(enumerate(s for s, _ in todo))
        for parts, file_rejects in _map_files(read, items, self.settings.run.workers, self.pool):
            rejects.extend(file_rejects)
            for resource, path, index in parts:
                self.sell_stage.adopt(resource, path, index)
        if not todo:  # nothing read from Sell: the CRM is loaded only if chats need matching
            counts = {name: 0 for name in RESOURCES if name != "notes"}
            return _SellRead(todo, {}, {}, None, set(), counts, rejects)
        exported = {name: self.sell_stage.index(name) for name in RESOURCES}
        exported = {
            name: frame if frame is not None else _empty_sell(name, match)
            for name, frame in exported.items()
        }
        counts = {
            name: len(frame) for name, frame in exported.items() if name != "notes" or len(frame)
        }
        # the diff needs only ids, hashes and emails of the store: the exported frames and the
        # whole stored CRM are never held at once (a --full run of a million records)
        keys = self.store.crm_frames(only=("sell_hash", "email_normalized"))
        keys["users"] = self.store.crm_frames(["users"])["users"]
        users_after = crm_after(keys, diff(keys, {"users": exported["users"]}))["users"]
        exported = resolve_owners(exported, users_after)
        delta = diff(keys, exported, track_emails=self.store.has_chats())
        exported_ids = {name: frame["id"] for name, frame in exported.items()}
        del exported, keys
        return _SellRead(
            todo=todo,
            changes=delta.changes,
            exported_ids=exported_ids,
            crm=crm_after(self.store.crm_frames(), delta),
            affected_emails=delta.affected_emails,
            counts=counts,
            rejects=rejects,
            users=users_after,
        )

    def _write_sell(self, sell: _SellRead, resumed: bool) -> None:
        if not resumed or not self.counters["inputs"]["sell_records"]:
            self.counters["inputs"]["sell_records"] = {k: int(v) for k, v in sell.counts.items()}
        log.info(
            "sell snapshot read",
            extra={"event": "sell_loaded", "run_id": self.run_id,
                   **{f"{k}_changed": len(v) for k, v in sell.changes.items()}},
        )  # fmt: skip
        if self.dry_run:
            return
        deletes = {}
        if self.settings.sell.snapshot_is_complete and sell.todo:
            deletes = {
                resource: sell.exported_ids[resource].dropna().astype(int)
                for resource in ("leads", "contacts", "deals", "users")
            }
        parts = {resource: self.sell_stage.paths(resource) for resource in sell.changes}
        # the rows are read back from the stage's files: the writer needs only which versions won
        changes: dict[str, pd.DataFrame] | Path = {
            resource: frame[[c for c in ("id", "sell_hash") if c in frame.columns]]
            for resource, frame in sell.changes.items()
        }
        if self.writer is not None:  # a million ids and hashes: to the writer through a file,
            spilled = self.sell_stage.directory / "changes.pickle"  # not a copy in memory
            with open(spilled, "wb") as out:
                pickle.dump((changes, deletes), out, protocol=pickle.HIGHEST_PROTOCOL)
            changes, deletes = spilled, {}
        self._transact(
            write_sell, self.run_id, changes, parts, sell.users, deletes,
            sell.affected_emails, _file_rows(sell.todo, "sell"), self.counters,
        )  # fmt: skip

    def _transact(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn(conn, *args)`` in a transaction of its own: in the writer process when there is
        one (queued behind what it was sent; this process goes on planning), else here."""
        if self.writer is not None:
            self.writer.call(fn, *args)
            return
        with self.store.transaction() as conn:
            fn(conn, *args)

    def _sync_writer(self) -> None:
        """Wait until the writer process has committed all it was sent."""
        if self.writer is not None:
            self.writer.commit()

    # -- chats ----------------------------------------------------------------------------------

    def _stage_chats(self, stage: ChatStage | None, todo: list[tuple[SourceFile, str]]):
        """Parse the chat files into the stage; nothing is written to the store yet."""
        if stage is None:  # --engine dask: the workers parse and keep the chats
            return self._stage_on_workers(todo)
        rejects: list[Reject] = []
        agents, departments = [], []
        read = 0
        run = self.settings.run
        try:
            parts = fill(stage, [s for s, _ in todo], run.chunk_size, run.workers, self.pool)
            for part in parts:
                rejects.extend(part.rejects)
                agents.extend(part.agents)
                departments.extend(part.departments)
                read += part.chats
                self.progress("read", read, None)
        finally:
            self._close_pool()  # the files are read: the workers end
        self.agents = _latest(agents, "agent_id", self.store.agents_frame())
        self.departments = _latest(departments, "department_id", self.store.departments_frame())
        self.chat_file_rejects = rejects
        return stage

    def _stage_on_workers(self, todo: list[tuple[SourceFile, str]]):
        from etl.dask_engine import stage_on_workers

        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        stage, metas = stage_on_workers(
            self.client, [s for s, _ in todo], self.settings.run.chunk_size, partitions=workers
        )
        self.agents = _latest(
            [a for m in metas for a in m["agents"]], "agent_id", self.store.agents_frame()
        )
        self.departments = _latest(
            [d for m in metas for d in m["departments"]],
            "department_id",
            self.store.departments_frame(),
        )
        self.chat_file_rejects = [r for m in metas for r in m["rejects"]]
        self.progress("read", sum(m["chats"] for m in metas), None)
        return stage

    def _record_inputs(
        self, stage: ChatStage, todo: list[tuple[SourceFile, str]], sell_rejects: list[Reject]
    ) -> None:
        """Count what was read and record the rejects, the agents and the departments."""
        rejects = [*sell_rejects, *self.chat_file_rejects]
        reject_frame = pd.DataFrame(
            [{"source_file": r.source_file, "position": r.position, "kind": r.kind, "reason": r.reason,
              "raw": r.raw, "chat_id": r.chat_id} for r in rejects],
            columns=["source_file", "position", "kind", "reason", "raw", "chat_id"],
        ).drop_duplicates(["source_file", "position"])  # fmt: skip
        chat_rejects = reject_frame[reject_frame["kind"] == "chat"]
        reject_outcomes = pd.DataFrame(
            {
                "chat_id": "rejected:"
                + chat_rejects["source_file"]
                + "#"
                + chat_rejects["position"],
                "outcome": "rejected",
                "reason": chat_rejects["reason"],
                "match_count": 0,
            }
        )
        inputs = self.counters["inputs"]
        inputs["chat_files"] = len(todo)
        inputs["chats_staged"] = stage.count(self.options.since, self.options.until)
        if self.options.backfill:
            inputs["chats_outside_window"] = stage.count() - inputs["chats_staged"]
        inputs["chat_rejects"] = len(reject_outcomes)
        self.counters["rejects"] = len(reject_frame)
        self.dry_outcomes["rejected"] = len(reject_outcomes)
        self.reject_frame = reject_frame
        if self.dry_run and self.options.report_dir is not None:
            self.dry_digest.add(reject_outcomes)
        if not self.dry_run:
            self._transact(
                record_inputs, self.run_id, self.agents, self.departments, reject_frame,
                reject_outcomes, self.counters,
            )  # fmt: skip

    def _planner(self, crm: dict[str, pd.DataFrame]) -> Planner:
        settings = self.settings
        index = build_index(
            crm["leads"], crm["contacts"], crm["deals"], crm["users"], crm["lead_conversions"],
            settings.match.converted_statuses, run_id=self.run_id,
        )  # fmt: skip
        users = crm["users"]
        active = users.loc[users["status"].fillna("active").str.lower() != "inactive", "id"]
        defaults = settings.lead_defaults
        enabled = defaults.enabled and self.options.create_leads
        ctx = PlanContext(
            now=pd.Timestamp(self.now),
            run_id=self.run_id,
            provider_rules=tuple(settings.match.provider_rules),
            strip_plus_tags=settings.match.strip_plus_tags,
            attach_to_deals=settings.match.attach_to_deals,
            transcript_url_template=settings.chat.transcript_url_template,
            subdomain=settings.chat.subdomain,
            agent_users=agent_user_map(self.agents, users),
            active_users=frozenset(int(i) for i in active.dropna()),
            agent_emails=self.agents.set_index("agent_id")["email"]
            if not self.agents.empty
            else pd.Series(dtype=object),
            department_names=self.departments.set_index("department_id")["name"]
            if not self.departments.empty
            else pd.Series(dtype=object),
            leads=LeadPolicy(
                enabled=enabled,
                source=defaults.source,
                status=defaults.status,
                tags=tuple(defaults.tags),
                max_chat_age_days=defaults.max_chat_age_days,
                ignore_domains=tuple(
                    d.strip().lower().removeprefix("@") for d in defaults.ignore_domains
                ),
                create_from_offline=defaults.create_from_offline,
                disabled_reason="lead creation disabled (--no-create-leads)"
                if not self.options.create_leads
                else "lead creation disabled ([lead_defaults] enabled = false)",
            ),
            phone=PhonePolicy(
                policy=settings.phone.policy,
                update_contacts=settings.phone.update_contacts,
                require_sell_agent=settings.phone.require_sell_agent,
                default_region=settings.phone.default_region,
            ),
            notify_tags=frozenset(settings.notify.tags) if self.options.notify else frozenset(),
            integration_user_id=self.integration_user_id,
        )
        if "{subdomain}" in ctx.transcript_url_template and not ctx.subdomain:
            self.warn(
                "transcript links are empty: set [chat] subdomain (or transcript_url_template)"
            )
        chat_leads = crm["leads"]["id"].dropna()
        lowest = int(chat_leads.min()) if not chat_leads.empty else 0
        return Planner(
            index=index, ctx=ctx, assigner=self.assigner, next_lead_id=min(lowest, 0) - 1
        )

    @property
    def planner(self) -> Planner:
        """Built on first use: an unchanged sync never loads the CRM."""
        if self._planner_obj is None:
            crm = self.crm if self.crm is not None else self.store.crm_frames()
            self.crm = None  # the index keeps what matching needs; the rest is freed
            self._planner_obj = self._planner(crm)
        return self._planner_obj

    def _process(self, stage: ChatStage, resumed: bool) -> None:
        done = (
            self.store.done_chat_ids(self.run_id) if resumed and self.run_id is not None else set()
        )
        if not self.options.backfill:
            self._process_range(stage, None, None, done)
            return
        windows = self._windows(stage)
        finished = (
            self.store.finished_windows(self.run_id)
            if resumed and self.run_id is not None
            else set()
        )
        if self.options.engine == "dask":
            from etl.dask_engine import process_windows

            process_windows(self, self.client, stage, windows, finished, resumed)
            return
        for number, (start, end) in enumerate(windows, start=1):
            if start in finished:
                continue
            chats = self._process_range(stage, start, end, done)
            self.window_done(number, len(windows), start, end, chats)

    def window_done(
        self, number: int, of: int, start: pd.Timestamp, end: pd.Timestamp, chats: int
    ) -> None:
        """Record a backfill window as finished (``--resume`` goes on after it)."""
        if not self.dry_run:
            with self.store.transaction() as conn:
                writers.finish_window(
                    conn, self.run_id, start.to_pydatetime(), end.to_pydatetime(), chats
                )
        self.progress("backfill", number, of)
        log.info(
            "window done",
            extra={"event": "window", "run_id": self.run_id, "window_start": start.isoformat(),
                   "window_end": end.isoformat(), "chats": chats, "window": number, "windows": of},
        )  # fmt: skip

    def _windows(self, stage: ChatStage) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """[since, until) cut into windows; without bounds, from the first to the last chat staged."""
        span = stage.span()
        since = (
            pd.Timestamp(self.options.since)
            if self.options.since is not None
            else (span[0] if span else None)
        )
        until = pd.Timestamp(self.options.until) if self.options.until is not None else None
        if until is None and span is not None:
            until = span[1] + pd.Timedelta(microseconds=1)
        if since is None or until is None or since >= until:
            return []
        step = pd.Timedelta(self.options.window or timedelta(days=1))
        edges = list(pd.date_range(since, until, freq=step))
        if edges[-1] < until:
            edges.append(until)
        return list(zip(edges[:-1], edges[1:], strict=True))

    def _process_range(
        self,
        stage: ChatStage,
        since: pd.Timestamp | None,
        until: pd.Timestamp | None,
        done: set[str],
    ) -> int:
        """Plan and apply the staged chats started in [since, until), chunk by chunk."""
        total = self.counters["inputs"]["chats_staged"]
        since = since if since is not None else self.options.since
        until = until if until is not None else self.options.until
        processed = 0
        with self._batch() as batch:
            for chunk in stage.chunks(self.settings.run.chunk_size, since, until):
                if self.should_stop():
                    if batch is not None:  # what was applied is kept; the next run goes on
                        batch.commit()
                    raise RunStopped("stopped on request between chunks")
                processed += len(chunk)
                stored = self.store.chat_versions(chunk["chat_id"])
                chunk = newest_versions(self.store, chunk, stored)
                if done:
                    chunk = chunk[~chunk["chat_id"].isin(done)]
                if not chunk.empty:
                    self._plan_and_apply(chunk, record_outcomes=True, stored=stored, writer=batch)
                    if batch is not None:
                        batch.applied(len(chunk))
                self.progress("sync", processed, total)
                log.info(
                    "chunk applied",
                    extra={"event": "chunk", "run_id": self.run_id, "chats": processed},
                )
        return processed

    def _batch(self) -> contextlib.AbstractContextManager[InlineWriter | ProcessWriter | None]:
        """Where a range's chunks are written, ``[run] commit_size`` chats to a transaction."""
        if self.dry_run:
            return contextlib.nullcontext(None)
        size = self.settings.run.commit_size
        if self.writer is not None:
            return self.writer.batch(self.run_id, self.counters, size)
        return InlineWriter(self.store, self.run_id, self.counters, size)

    def _plan_and_apply(
        self,
        chats: pd.DataFrame,
        record_outcomes: bool,
        clear_emails: set[str] | None = None,
        stored: pd.DataFrame | None = None,
        writer: InlineWriter | ProcessWriter | None = None,
    ) -> None:
        """``stored``: what ``Store.chat_versions`` gave for these chats, if read already. A chat
        the store does not hold has no activities yet: they are not looked up. ``writer``: the
        range's writer (else the chunk is written here, in a transaction of its own)."""
        plan = self._plan(chats, record_outcomes)
        self._apply(plan, record_outcomes, clear_emails, stored, writer)

    def _plan(self, chats: pd.DataFrame, record_outcomes: bool) -> ChunkPlan:
        """A chunk's plan (phone changes already made to these chats are not made again)."""
        with self.store.engine.connect() as conn:
            applied = writers.applied_phone_changes(conn, chats["chat_id"])
        return self.planner.plan(chats, record_outcomes=record_outcomes, applied_changes=applied)

    def _apply(
        self,
        plan: ChunkPlan,
        record_outcomes: bool,
        clear_emails: set[str] | None,
        stored: pd.DataFrame | None = None,
        writer: InlineWriter | ProcessWriter | None = None,
    ) -> None:
        """Write a plan (a dry run only counts it) and add it to the run's counters."""
        for warning in plan.warnings:
            self.warn(warning)
        if record_outcomes:
            add_counts(self.dry_outcomes, plan.outcome_counts())
            self.dry_multi |= plan.multi_match_emails
            if self.dry_run and self.options.report_dir is not None:
                self.dry_digest.add(plan.outcomes)
        self.count_assignments(plan.leads, plan.assignments)
        held = plan.chats["chat_id"]
        if stored is not None:  # activities are written with their chat: a new chat has none
            held = held[held.isin(set(stored["chat_id"]))]
        if self.dry_run:
            with self.store.engine.connect() as read:
                existing = writers.existing_activities(read, held)
            _rows, counts, _stale = writers.classify_activities(
                plan.activities, existing, plan.chats[["chat_id", "version"]]
            )
            self._count_activities(counts)
            add_counts(self.counters["writes"], {"leads_created": len(plan.leads), "phone_updates": len(plan.phone_changes),
                                "notes_created": self._new_keys("notes", plan.notes),
                                "notifications_created": self._new_keys("notifications", plan.notifications)})  # fmt: skip
            return
        job = PlanWrite(plan, record_outcomes, clear_emails, stored, held)
        if writer is not None:
            writer.write(job)
            return
        with self.store.transaction() as conn:
            write_plan(conn, self.run_id, job, self.counters)

    def count_assignments(self, leads: pd.DataFrame, assignments: pd.DataFrame) -> None:
        """New leads' owners into the report's counters and the run's result (a dry run shows them)."""
        for group, counts in assignment_counts(assignments).items():
            add_counts(self.counters["assignments"][group], counts)
        if not leads.empty and self.options.collect_leads:
            self.planned_leads.append(
                leads[["id", "email_normalized", "owner_id", "origin_chat_id"]].assign(
                    pool=assignments["pool"].to_numpy(), rule=assignments["rule"].to_numpy()
                )
            )

    def _new_keys(self, table: str, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        with self.store.engine.connect() as conn:
            return writers.count_new_keys(conn, table, frame)

    def _count_activities(self, counts: writers.ActivityWrites) -> None:
        add_counts(
            self.counters["writes"],
            {
                "activities_inserted": counts.inserted,
                "activities_updated": counts.updated,
                "activities_unchanged": counts.unchanged,
                "activities_removed": counts.removed,
            },
        )

    def _rematch(self, stage: ChatStage, affected_emails: set[str]) -> None:
        """Chats already in the store whose email gained a record (a new lead, contact or deal):
        attach them too, so every card shows every chat of its email (seed S1)."""
        emails = set(affected_emails) if self.dry_run else self.store.rematch_queue()
        if not emails:
            return
        ordered = sorted(emails)
        for start in range(0, len(ordered), 5_000):
            part = set(ordered[start : start + 5_000])
            chats = self.store.chats_by_email(part, list(CHAT_COLUMNS))
            chats = chats[~chats["chat_id"].isin(stage.staged(chats["chat_id"]))]
            chats = chats.sort_values(["started_at", "chat_id"], kind="stable").reset_index(
                drop=True
            )
            if chats.empty:
                if not self.dry_run:
                    with self.store.transaction() as conn:
                        writers.clear_rematch(conn, part)
                continue
            self.counters["inputs"]["chats_rematched"] += len(chats)
            self._plan_and_apply(chats, record_outcomes=False, clear_emails=part)

    # -- end ------------------------------------------------------------------------------------

    def _finish(self, chat_todo: list[tuple[SourceFile, str]]) -> dict[str, Any]:
        finished = datetime.now(UTC)
        if self.dry_run:
            return build_report(
                run_id=None, mode=self.mode, status="succeeded", started_at=self.started_at, finished_at=finished,
                counters=self.counters, outcomes=self.dry_outcomes, multi_match_emails=len(self.dry_multi),
            )  # fmt: skip
        outcomes, multi = self.store.outcome_summary(self.run_id)
        report = build_report(
            run_id=self.run_id, mode=self.mode, status="succeeded", started_at=self.started_at, finished_at=finished,
            counters=self.counters, outcomes=outcomes, multi_match_emails=multi,
        )  # fmt: skip
        if not report["accounting"]["balanced"]:
            self.warn("accounting is not balanced: chats read and outcomes differ")
            report["warnings"] = list(self.counters["warnings"])
        with self.store.transaction() as conn:
            if not self.options.backfill:  # a backfill took only a window of these files
                writers.mark_files(conn, self.run_id, _file_rows(chat_todo, "chat"))
            writers.save_counters(conn, self.run_id, self.counters)
            writers.finish_run(conn, self.run_id, "succeeded", report)
        return report

    def _fail(self, error: str) -> None:
        if self.run_id is None or self.dry_run:
            return
        try:
            with self.store.transaction() as conn:
                writers.finish_run(
                    conn, self.run_id, "failed", None, error=error.splitlines()[0][:500]
                )
        except ChatsellError:
            log.error("could not record the failure of run %s", self.run_id)

    def warn(self, message: str) -> None:
        if message not in self.counters["warnings"]:
            self.counters["warnings"].append(message)
            log.warning(message, extra={"event": "warning", "run_id": self.run_id})

    def _write_report_files(self, report: dict[str, Any]) -> None:
        if self.options.report_dir is None:
            return
        if self.dry_run:
            outcomes, rejects, total = self.dry_digest, self.reject_frame, None
        else:  # the page's counts and first rows, read in bounded fetches
            outcomes = self.store.outcome_digest(self.run_id)
            rejects = self.store.reject_rows(self.run_id, limit=LIST_LIMIT)
            total = self.store.reject_count(self.run_id)
        write_report_files(report, outcomes, rejects, self.options.report_dir, total)


def write_sell(
    conn: Connection,
    run_id: int,
    changes: dict[str, pd.DataFrame] | Path,
    parts: dict[str, list[Path]],
    users: pd.DataFrame | None,
    deletes: dict[str, pd.Series],
    affected_emails: set[str],
    files: pd.DataFrame,
    counters: dict[str, Any],
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


def record_inputs(
    conn: Connection,
    run_id: int,
    agents: pd.DataFrame,
    departments: pd.DataFrame,
    rejects: pd.DataFrame,
    reject_outcomes: pd.DataFrame,
    counters: dict[str, Any],
) -> None:
    """The run's reference rows (agents, departments), rejects and counters."""
    writers.apply_reference(conn, agents, departments)
    writers.record_rejects(conn, run_id, rejects, reject_outcomes)
    writers.save_counters(conn, run_id, counters)


def newest_versions(
    store: Store, chunk: pd.DataFrame, stored: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The newest version of each chat: the staged one, or the store's when that is newer.

    ``stored``: ``store.chat_versions`` of the chunk, when the caller read it already.
    """
    if stored is None:
        stored = store.chat_versions(chunk["chat_id"])
    if stored.empty:
        return chunk
    compare = chunk[["chat_id", "version"]].merge(stored, on="chat_id", suffixes=("", "_stored"))
    newer = compare.loc[compare["version_stored"] > compare["version"], "chat_id"]
    if newer.empty:
        return chunk
    kept = store.stored_chats(newer, list(CHAT_COLUMNS))
    chunk = pd.concat(
        [chunk[~chunk["chat_id"].isin(set(newer))], kept[list(CHAT_COLUMNS)]], ignore_index=True
    )
    return chunk.sort_values(["started_at", "chat_id"], kind="stable").reset_index(drop=True)


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
    for resource, frame in iter_sell_frames([source], rejects, labels, encoding):
        keyed = with_email_keys({resource: frame}, *rules)[resource]
        path = directory / f"{number:05d}_{resource}.pickle"
        parts.append((resource, path, spill(keyed, path, _SELL_INDEX.get(resource))))
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


def _key(source: SourceFile, dirs: dict[str, str]) -> str:
    """The file's canonical path, as ``Path.resolve`` gives it, each directory resolved once per
    call site's ``dirs`` (resolving a thousand files one by one was a twentieth of an unchanged
    sync). Not cached across runs: a scheduler's next run sees a directory link that moved."""
    path = source.path
    if path.is_symlink():
        return str(path.resolve())
    parent = str(path.parent)
    if parent not in dirs:
        dirs[parent] = str(path.parent.resolve())
    return os.path.join(dirs[parent], path.name)


def _file_rows(todo: list[tuple[SourceFile, str]], kind: str) -> pd.DataFrame:
    dirs: dict[str, str] = {}
    return pd.DataFrame(
        [
            {
                "path": _key(s, dirs),
                "kind": kind,
                "size": s.size,
                "mtime_ns": s.mtime_ns,
                "sha256": sha,
            }
            for s, sha in todo
        ],
        columns=["path", "kind", "size", "mtime_ns", "sha256"],
    )


def _latest(frames: list[pd.DataFrame], key: str, stored: pd.DataFrame) -> pd.DataFrame:
    """Reference rows (agents, departments): stored ones, overridden by this run's exports."""
    parts = [f for f in [stored, *frames] if not f.empty]
    if not parts:
        return frames[0] if frames else stored
    return (
        pd.concat(parts, ignore_index=True).drop_duplicates(key, keep="last").reset_index(drop=True)
    )
