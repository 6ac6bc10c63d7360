"""The runner: a sync or a backfill as a sequence of stages (``etl.run.runner``)."""

from etl.run.options import RunResult, SyncOptions
from etl.run.runner import run_sync

__all__ = ["RunResult", "SyncOptions", "run_sync"]
