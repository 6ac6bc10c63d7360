"""The Sell stage: a run's Sell records in scratch files, their index columns in memory."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from etl.extract.sell import newest
from etl.stage.scratch import scratch_dir


class SellStage:
    """The Sell records of one run, typed, one scratch file per export file and resource.

    A million-record snapshot held whole, with every field, is the largest thing a run would
    hold; here only each resource's index columns (what matching, diffing and owners need) stay
    in memory, and the full rows are read back one file at a time when they are written.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self._dir = scratch_dir("sell", directory)
        self._parts: dict[str, list[Path]] = {}
        self._index: dict[str, list[pd.DataFrame]] = {}

    @property
    def directory(self) -> Path:
        return Path(self._dir.name)

    def adopt(self, resource: str, path: Path, index: pd.DataFrame) -> None:
        """Take a frame ``spill`` wrote (in this process or a worker) with its kept columns."""
        self._parts.setdefault(resource, []).append(path)
        self._index.setdefault(resource, []).append(index)

    def index(self, resource: str) -> pd.DataFrame | None:
        """The kept columns of ``resource``, one row per id (its newest version); None if none."""
        parts = self._index.pop(resource, [])
        return newest(parts) if parts else None

    def paths(self, resource: str) -> list[Path]:
        """The scratch files of ``resource``, in the order they were added (``read_part``)."""
        return list(self._parts.get(resource, []))

    def close(self) -> None:
        self._parts.clear()
        self._index.clear()
        self._dir.cleanup()

    def __enter__(self) -> SellStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_part(path: Path) -> pd.DataFrame:
    """A frame ``spill`` wrote (in any process of the run)."""
    with open(path, "rb") as spilled:
        return pickle.load(spilled)  # noqa: S301 - written by spill(), in a private temp dir


def spill(frame: pd.DataFrame, path: Path, keep: Sequence[str] | None = None) -> pd.DataFrame:
    """Write ``frame`` to the scratch file ``path``; return its ``keep`` columns (None: all),
    copied, so the other columns' values are freed with the frame."""
    with open(path, "wb") as out:  # a private scratch file, read back by this run only
        pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
        # no memo: a frame holds no cycles, and its strings are each their own object; the
        # memo's entry per string took 2/3 of the time
        pickler.fast = True
        pickler.dump(frame)
    return kept(frame, keep).copy()


def kept(frame: pd.DataFrame, keep: Sequence[str] | None) -> pd.DataFrame:
    """The ``keep`` columns of ``frame``, in its order (None: all of them)."""
    return frame if keep is None else frame[[c for c in frame.columns if c in keep]]
