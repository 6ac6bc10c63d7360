"""What a run is asked to do (``SyncOptions``) and what it gives back (``RunResult``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

    def input_key(self, mode: str) -> str:
        """What a run of these inputs is known by (an interrupted one is resumed by the next)."""
        material = [mode, str(self.chats.resolve()), str(self.sell.resolve()), self.full,
                    self.create_leads, self.notify, str(self.since), str(self.until),
                    str(self.window)]  # fmt: skip
        return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:32]

    def recorded(self) -> dict[str, Any]:
        """The options as the run's row records them."""
        out = {"chats": str(self.chats), "sell": str(self.sell), "full": self.full,
               "create_leads": self.create_leads, "notify": self.notify}  # fmt: skip
        if self.backfill:
            out.update(since=str(self.since), until=str(self.until), window=str(self.window))
        return out


@dataclass
class RunResult:
    run_id: int | None
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    # leads this run created (or would, dry); None: none, an empty frame once asked for (an
    # unchanged sync builds no frame, so it does not import pandas)
    created_leads: pd.DataFrame | None = None

    @property
    def leads(self) -> pd.DataFrame:
        if self.created_leads is None:
            import pandas as pd  # noqa: PLC0415

            self.created_leads = pd.DataFrame()
        return self.created_leads


Progress = Callable[[str, int, int | None], None]


def _no_progress(_stage: str, _done: int, _total: int | None) -> None:
    return None
