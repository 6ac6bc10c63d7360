"""A sync, start to end: extract -> transform -> load -> report. Sequencing only.

Every write of a run commits in a transaction that also records the progress it covers
(the Sell snapshot with its file marks; each chunk of chats with its outcomes and the run's
counters; the run's end with the chat files it loaded). A run killed at any point is resumed
by the next run with the same inputs, which skips the chats already accounted for.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from etl.config import Settings
from etl.errors import ChatsellError, ConfigError
from etl.extract.chats import CHAT_COLUMNS, read_batches
from etl.extract.files import SourceFile, discover, fingerprint
from etl.extract.rejects import Reject
from etl.extract.sell import read_sell
from etl.load import writers
from etl.load.stage import ChatStage
from etl.load.store import Store
from etl.report.build import add_counts, build_report, empty_counters
from etl.transform.match import build_index
from etl.transform.plan import OUTCOME_COLUMNS, ChunkPlan, PlanContext, agent_user_map, plan_chunk
from etl.transform.sell import crm_after, diff, resolve_owners, with_email_keys

log = logging.getLogger("chatsell.pipeline")


@dataclass(frozen=True)
class SyncOptions:
    chats: Path
    sell: Path
    full: bool = False
    dry_run: bool = False
    mode: str = "sync"
    report_dir: Path | None = None


@dataclass
class RunResult:
    run_id: int | None
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


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
) -> RunResult:
    """Read the exports, plan, apply (unless a dry run) and report. One run under the store lock."""
    store = store or Store(settings.database_url.get_secret_value())
    store.prepare()
    chat_files = _discover(options.chats, "--chats")
    sell_files = _discover(options.sell, "--sell")
    with store.lock() as holder:
        return _Run(settings, options, store, holder, now or datetime.now(UTC), progress).execute(
            chat_files, sell_files
        )


def _discover(path: Path, option: str) -> list[SourceFile]:
    try:
        return discover(path)
    except FileNotFoundError:
        raise ConfigError(f"{option}: no such file or directory: {path}") from None


class _Run:
    def __init__(
        self,
        settings: Settings,
        options: SyncOptions,
        store: Store,
        holder: dict[str, object],
        now: datetime,
        progress: Progress,
    ) -> None:
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

    # -- the run --------------------------------------------------------------------------------

    def execute(self, chat_files: list[SourceFile], sell_files: list[SourceFile]) -> RunResult:
        known = self.store.source_files()
        sell_todo = self._changed(
            sell_files, known, "sell", force=self.settings.sell.snapshot_is_complete
        )
        chat_todo = self._changed(chat_files, known, "chat")
        resumed = False
        if not self.dry_run:
            self.run_id, resumed = self.store.begin_run(
                self.mode, self._input_key(), self._options(), self.holder
            )
            if resumed:
                self.counters = self.store.counters(self.run_id) or empty_counters()
        log.info(
            "run started",
            extra={"event": "run_started", "run_id": self.run_id, "mode": self.mode, "resumed": resumed,
                   "store": self.store.display_url, "chat_files": len(chat_todo), "sell_files": len(sell_todo)},
        )  # fmt: skip
        try:
            index_frames = self._load_sell(sell_todo, resumed)
            with ChatStage() as stage:
                self._stage_chats(stage, chat_todo, resumed)
                self._process(stage, index_frames, resumed)
                self._rematch(stage, index_frames)
            report = self._finish(chat_todo)
        except ChatsellError as exc:
            self._fail(str(exc))
            raise
        except Exception as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
            raise
        log.info(
            "run finished",
            extra={"event": "run_finished", "run_id": self.run_id, "status": report["status"],
                   "chats_read": report["accounting"]["chats_read"], "balanced": report["accounting"]["balanced"],
                   "rejects": report["rejects"], **report["writes"]},
        )  # fmt: skip
        self._write_report_files(report)
        return RunResult(self.run_id, report, report["warnings"])

    def _changed(
        self,
        files: list[SourceFile],
        known: dict[str, tuple[int, int, str]],
        kind: str,
        force: bool = False,
    ) -> list[tuple[SourceFile, str]]:
        """Files not loaded before or changed since (size and mtime, then content hash)."""
        todo = []
        for source in files:
            seen = known.get(_key(source))
            if (
                seen
                and not (self.options.full or force)
                and seen[0] == source.size
                and seen[1] == source.mtime_ns
            ):
                continue
            sha = fingerprint(source.path)
            if seen and not (self.options.full or force) and seen[2] == sha:
                continue
            todo.append((source, sha))
        log.debug("%s files to read: %d of %d", kind, len(todo), len(files))
        return todo

    def _input_key(self) -> str:
        material = json.dumps(
            [
                self.mode,
                str(self.options.chats.resolve()),
                str(self.options.sell.resolve()),
                self.options.full,
            ]
        )
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def _options(self) -> dict[str, Any]:
        return {
            "chats": str(self.options.chats),
            "sell": str(self.options.sell),
            "full": self.options.full,
        }

    # -- Sell -----------------------------------------------------------------------------------

    def _load_sell(
        self, todo: list[tuple[SourceFile, str]], resumed: bool
    ) -> dict[str, pd.DataFrame]:
        sell_settings = self.settings.sell
        extract = read_sell([s for s, _ in todo], sell_settings.csv_labels, sell_settings.encoding)
        match = self.settings.match
        exported = with_email_keys(extract.frames, match.provider_rules, match.strip_plus_tags)
        stored = self.store.crm_frames()
        users_after = crm_after(stored, diff(stored, {"users": exported["users"]}))["users"]
        exported = resolve_owners(exported, users_after)
        delta = diff(stored, exported)
        crm = crm_after(stored, delta)
        self.affected_emails = delta.affected_emails
        if not resumed or not self.counters["inputs"]["sell_records"]:
            self.counters["inputs"]["sell_records"] = {
                k: int(v) for k, v in extract.counts().items()
            }
        self.sell_rejects = extract.rejects
        if not self.dry_run:
            files = _file_rows(todo, "sell")
            with self.store.transaction() as conn:
                writers.apply_sell(conn, self.run_id, delta.changes)
                if sell_settings.snapshot_is_complete:
                    for resource, frame in extract.frames.items():
                        if any(True for _ in todo) and resource in (
                            "leads",
                            "contacts",
                            "deals",
                            "users",
                        ):
                            writers.delete_missing(conn, resource, frame["id"].dropna().astype(int))
                writers.queue_rematch(conn, self.run_id, delta.affected_emails)
                writers.mark_files(conn, self.run_id, files)
                writers.save_counters(conn, self.run_id, self.counters)
        log.info(
            "sell snapshot read",
            extra={
                "event": "sell_loaded",
                "run_id": self.run_id,
                **{f"{k}_changed": v for k, v in delta.counts().items()},
            },
        )
        return crm

    # -- chats ----------------------------------------------------------------------------------

    def _stage_chats(
        self, stage: ChatStage, todo: list[tuple[SourceFile, str]], resumed: bool
    ) -> None:
        rejects: list[Reject] = list(self.sell_rejects)
        agents, departments = [], []
        read = 0
        for batch in read_batches([s for s, _ in todo], self.settings.run.chunk_size):
            stage.add(batch.chats)
            rejects.extend(batch.rejects)
            agents.append(batch.agents)
            departments.append(batch.departments)
            read += len(batch.chats)
            self.progress("read", read, None)
        self.agents = _latest(agents, "agent_id", self.store.agents_frame())
        self.departments = _latest(departments, "department_id", self.store.departments_frame())
        reject_frame = pd.DataFrame(
            [
                {"source_file": r.source_file, "position": r.position, "kind": r.kind, "reason": r.reason,
                 "raw": r.raw, "chat_id": r.chat_id}
                for r in rejects
            ],
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
        inputs["chats_staged"] = stage.count()
        inputs["chat_rejects"] = len(reject_outcomes)
        self.counters["rejects"] = len(reject_frame)
        self.dry_outcomes["rejected"] = len(reject_outcomes)
        self.reject_frame = reject_frame
        if not self.dry_run:
            with self.store.transaction() as conn:
                writers.apply_reference(conn, self.agents, self.departments)
                writers.record_rejects(conn, self.run_id, reject_frame, reject_outcomes)
                writers.save_counters(conn, self.run_id, self.counters)

    def _context(self) -> PlanContext:
        match = self.settings.match
        chat = self.settings.chat
        return PlanContext(
            now=pd.Timestamp(self.now),
            run_id=self.run_id,
            provider_rules=tuple(match.provider_rules),
            strip_plus_tags=match.strip_plus_tags,
            attach_to_deals=match.attach_to_deals,
            transcript_url_template=chat.transcript_url_template,
            subdomain=chat.subdomain,
            agent_users=agent_user_map(self.agents, self.index.users),
            department_names=self.departments.set_index("department_id")["name"]
            if not self.departments.empty
            else pd.Series(dtype=object),
        )

    def _process(self, stage: ChatStage, crm: dict[str, pd.DataFrame], resumed: bool) -> None:
        self.index = build_index(
            crm["leads"], crm["contacts"], crm["deals"], crm["users"], crm["lead_conversions"],
            self.settings.match.converted_statuses,
        )  # fmt: skip
        self.ctx = self._context()
        if "{subdomain}" in self.ctx.transcript_url_template and not self.ctx.subdomain:
            self._warn(
                "transcript links are empty: set [chat] subdomain (or transcript_url_template)"
            )
        done = (
            self.store.done_chat_ids(self.run_id) if resumed and self.run_id is not None else set()
        )
        total = self.counters["inputs"]["chats_staged"]
        processed = 0
        for chunk in stage.chunks(self.settings.run.chunk_size):
            processed += len(chunk)
            chunk = self._effective(chunk)
            if done:
                chunk = chunk[~chunk["chat_id"].isin(done)]
            if chunk.empty:
                continue
            plan = plan_chunk(chunk, self.index, self.ctx)
            self._apply(plan, record_outcomes=True)
            self.progress("sync", processed, total)
            log.info(
                "chunk applied",
                extra={
                    "event": "chunk",
                    "run_id": self.run_id,
                    "chats": len(chunk),
                    "done": processed,
                    "total": total,
                },
            )

    def _effective(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """The newest version of each chat: the staged one, or the store's when that is newer."""
        stored = self.store.chat_versions(chunk["chat_id"])
        if stored.empty:
            return chunk
        compare = chunk[["chat_id", "version"]].merge(
            stored, on="chat_id", suffixes=("", "_stored")
        )
        newer = compare.loc[compare["version_stored"] > compare["version"], "chat_id"]
        if newer.empty:
            return chunk
        kept = self.store.stored_chats(newer, list(CHAT_COLUMNS))
        chunk = pd.concat(
            [chunk[~chunk["chat_id"].isin(set(newer))], kept[list(CHAT_COLUMNS)]], ignore_index=True
        )
        return chunk.sort_values(["started_at", "chat_id"], kind="stable").reset_index(drop=True)

    def _apply(
        self, plan: ChunkPlan, record_outcomes: bool, clear_emails: set[str] | None = None
    ) -> None:
        if record_outcomes:
            add_counts(self.dry_outcomes, plan.outcome_counts())
            self.dry_multi |= plan.multi_match_emails
        chat_versions = plan.chats[["chat_id", "version"]]
        if self.dry_run:
            with self.store.engine.connect() as conn:
                existing = writers.existing_activities(conn, plan.chats["chat_id"])
            _rows, counts, _stale = writers.classify_activities(
                plan.activities, existing, chat_versions
            )
            self._count_activities(counts)
            return
        with self.store.transaction() as conn:
            existing = writers.existing_activities(conn, plan.chats["chat_id"])
            rows, counts, stale = writers.classify_activities(
                plan.activities, existing, chat_versions
            )
            writers.upsert_chats(conn, plan.chats)
            writers.write_activities(conn, rows, stale)
            if record_outcomes:
                writers.write_outcomes(conn, self.run_id, plan.outcomes[list(OUTCOME_COLUMNS)])
            if clear_emails:
                writers.clear_rematch(conn, clear_emails)
            self._count_activities(counts)
            writers.save_counters(conn, self.run_id, self.counters)

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

    def _rematch(self, stage: ChatStage, crm: dict[str, pd.DataFrame]) -> None:
        """Chats already in the store whose email gained a record (a new lead, contact or deal):
        attach them too, so every card shows every chat of its email (seed S1)."""
        emails = set(self.affected_emails) if self.dry_run else self.store.rematch_queue()
        if not emails:
            return
        staged = stage.chat_ids()
        ordered = sorted(emails)
        columns = [*CHAT_COLUMNS]
        for start in range(0, len(ordered), 5_000):
            part = set(ordered[start : start + 5_000])
            chats = self.store.chats_by_email(part, columns)
            chats = chats[~chats["chat_id"].isin(staged)]
            chats = chats.sort_values(["started_at", "chat_id"], kind="stable").reset_index(
                drop=True
            )
            if chats.empty:
                if not self.dry_run:
                    with self.store.transaction() as conn:
                        writers.clear_rematch(conn, part)
                continue
            plan = plan_chunk(chats, self.index, self.ctx)
            self.counters["inputs"]["chats_rematched"] += len(chats)
            self._apply(plan, record_outcomes=False, clear_emails=part)

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
            self._warn("accounting is not balanced: chats read and outcomes differ")
            report["warnings"] = list(self.counters["warnings"])
        with self.store.transaction() as conn:
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

    def _warn(self, message: str) -> None:
        if message not in self.counters["warnings"]:
            self.counters["warnings"].append(message)
            log.warning(message, extra={"event": "warning", "run_id": self.run_id})

    def _write_report_files(self, report: dict[str, Any]) -> None:
        if self.options.report_dir is None:
            return
        directory = self.options.report_dir
        directory.mkdir(parents=True, exist_ok=True)
        name = f"run-{report['run_id']}" if report["run_id"] is not None else "dry-run"
        (directory / f"{name}.json").write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )


def _key(source: SourceFile) -> str:
    return str(source.path.resolve())


def _file_rows(todo: list[tuple[SourceFile, str]], kind: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"path": _key(s), "kind": kind, "size": s.size, "mtime_ns": s.mtime_ns, "sha256": sha}
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
