"""The finish stage: the run's report from its counters and recorded outcomes, committed with the
chat files it loaded; or the failure, recorded; then the report's files."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from etl.contracts import Sink
from etl.errors import ChatsellError
from etl.load import writers
from etl.report.build import build_report
from etl.run.files import Todo, file_rows
from etl.run.state import RunState
from etl.vocab import RunCounters

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection

log = logging.getLogger("chatsell.pipeline")


def finish(state: RunState, sink: Sink, chat_todo: Todo) -> dict[str, Any]:
    """The report; the run marked succeeded, with its counters and (a sync's) chat files."""
    finished = datetime.now(UTC)
    outcomes, multi, removed = sink.outcome_summary()
    report = build_report(
        run_id=state.run_id, mode=state.mode, status="succeeded", started_at=state.now,
        finished_at=finished, counters=state.counters, outcomes=outcomes,
        multi_match_emails=multi, removed_reasons=removed,
    )  # fmt: skip
    # (a dry run tallies one outcome per chat it plans: its accounting is not checked)
    if state.run_id is not None and not report["accounting"]["balanced"]:
        state.warn("accounting is not balanced: chats read and outcomes differ")
        report["warnings"] = list(state.counters.warnings)
    # a backfill took only a window of these files: they are not marked loaded
    files = file_rows([] if state.options.backfill else chat_todo, "chat")
    sink.call(finish_run, state.run_id, files, state.counters, report)
    sink.commit()
    return report


def finish_run(
    conn: Connection, run_id: int, files: pd.DataFrame | None, counters: RunCounters, report: dict
) -> None:
    """The run's end: ``files`` it loaded (None: none), its counters, its report."""
    if files is not None:
        writers.mark_files(conn, run_id, files)
    writers.save_counters(conn, run_id, counters)
    writers.finish_run(conn, run_id, "succeeded", report)


def fail(state: RunState, error: str) -> None:
    """Record the run as failed (here: its sink has ended)."""
    if state.run_id is None:
        return
    try:
        with state.store.transaction() as conn:
            writers.finish_run(
                conn, state.run_id, "failed", None, error=error.splitlines()[0][:500]
            )
    except ChatsellError:
        log.error("could not record the failure of run %s", state.run_id)


def write_files(state: RunState, report: dict[str, Any], sink: Sink | None) -> None:
    """``run-<id>.json`` and ``.html`` in ``--report-dir``: a dry run's page from what its sink
    recorded, a run's from the store (counts and the first rows, in bounded fetches)."""
    out = state.options.report_dir
    if out is None:
        return
    from etl.report.digest import LIST_LIMIT, OutcomeDigest  # noqa: PLC0415
    from etl.report.files import write_report_files  # noqa: PLC0415

    if state.run_id is None:
        outcomes, rejects, total = sink.digest, sink.rejects, None
    else:  # (a run without outcomes or rejects, an unchanged sync's, builds no frame)
        outcomes = OutcomeDigest.from_store(*state.store.outcome_digest_rows(state.run_id))
        total = state.store.reject_count(state.run_id)
        rejects = state.store.reject_rows(state.run_id, limit=LIST_LIMIT) if total else None
    write_report_files(report, outcomes, rejects, out, total)
