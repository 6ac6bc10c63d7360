"""The explicit state of one run, handed to each of its stages: what it was asked, where it
writes its bookkeeping, what it has counted so far."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from etl.config import Settings
from etl.load.store import Store
from etl.run.options import Progress, SyncOptions
from etl.vocab import RunCounters

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("chatsell.pipeline")


@dataclass
class RunState:
    settings: Settings
    options: SyncOptions
    store: Store
    now: datetime
    progress: Progress
    should_stop: Callable[[], bool]
    run_id: int | None = None  # None until the run has its row (and in a dry run, always)
    counters: RunCounters = field(default_factory=RunCounters)
    planned_leads: list[pd.DataFrame] = field(default_factory=list)

    @property
    def dry_run(self) -> bool:
        return self.options.dry_run

    @property
    def mode(self) -> str:
        return "dry-run" if self.options.dry_run else self.options.mode

    def warn(self, message: str) -> None:
        """A warning of the run, in its report once, and logged."""
        if message not in self.counters.warnings:
            self.counters.warnings.append(message)
            log.warning(message, extra={"event": "warning", "run_id": self.run_id})

    def count_assignments(self, leads: pd.DataFrame, assignments: pd.DataFrame) -> None:
        """New leads' owners into the report's counters and the run's result (a dry run shows
        them)."""
        from etl.transform.plan import assignment_counts  # noqa: PLC0415 - the planner's

        self.counters.add_assignments(assignment_counts(assignments))
        if not leads.empty and self.options.collect_leads:
            self.planned_leads.append(
                leads[["id", "email_normalized", "owner_id", "origin_chat_id"]].assign(
                    pool=assignments["pool"].to_numpy(), rule=assignments["rule"].to_numpy()
                )
            )
