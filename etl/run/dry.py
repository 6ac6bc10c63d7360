"""A dry run's sink: it writes nothing, and records and counts what would be written instead.

The plans are counted against the store as it is (``etl.load.apply.count_plan``: what
``apply_plan`` would write), and the outcomes a real run would record in ``run_outcomes`` are
tallied here (and kept for the report page when one is asked for).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from etl.load.apply import count_plan
from etl.load.store import Store
from etl.report.digest import OutcomeDigest
from etl.vocab import OUTCOMES, PlanWrite, RunCounters, RunInputs


class DrySink:
    elsewhere = False

    def __init__(self, store: Store, counters: RunCounters, keep_page: bool) -> None:
        self.store, self.counters, self.keep_page = store, counters, keep_page
        self.outcomes: dict[str, int] = {}
        self.multi_match: set[str] = set()
        self.removed_reasons: dict[str, int] = {}
        self.digest = OutcomeDigest()  # the report page's, chunk by chunk
        self.rejects = pd.DataFrame()

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """A transaction of the run's own (the Sell snapshot, window marks): nothing is written."""

    def record_inputs(self, inputs: RunInputs) -> None:
        self.outcomes["rejected"] = len(inputs.reject_outcomes)
        self.rejects = inputs.rejects
        if self.keep_page:
            self.digest.add(inputs.reject_outcomes)

    def apply(self, job: PlanWrite) -> None:
        plan = job.plan
        if job.record_outcomes:
            for name, count in plan.outcome_counts().items():
                self.outcomes[name] = self.outcomes.get(name, 0) + count
            self.multi_match |= plan.multi_match_emails
            removed = plan.outcomes.loc[plan.outcomes["outcome"] == "removed", "reason"]
            for reason, count in removed.fillna("").value_counts().items():
                self.removed_reasons[reason] = self.removed_reasons.get(reason, 0) + int(count)
            if self.keep_page:
                self.digest.add(plan.outcomes)
        with self.store.engine.connect() as conn:
            self.counters.writes.add(count_plan(conn, job))

    def applied(self, chats: int) -> None:
        return None

    def commit(self) -> None:
        return None

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None

    def outcome_summary(self) -> tuple[dict[str, int], int, dict[str, int]]:
        counts = {name: self.outcomes.get(name, 0) for name in OUTCOMES}
        return counts, len(self.multi_match), dict(self.removed_reasons)
