"""What a run is asked to do (``SyncOptions``) and what it gives back (``RunResult``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd


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
    engine: str = "local"  # backfill: "dask" runs it on Dask distributed (etl.run.dask)
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
