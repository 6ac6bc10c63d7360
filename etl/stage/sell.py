"""The Sell stage: a run's Sell records in scratch files, their index columns in memory."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
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

    def adopt(self, resource: str, path: Path, index: pd.DataFrame | Path) -> None:
        """Take a frame ``spill`` wrote (in this process or a worker) with its kept columns,
        or the file ``spill_index`` wrote them to."""
        self._parts.setdefault(resource, []).append(path)
        self._index.setdefault(resource, []).append(index)

    def index(self, resource: str) -> pd.DataFrame | None:
        """The kept columns of ``resource``, one row per id (its newest version); None if none."""
        parts = self.index_sources(resource)
        return index_of(parts) if parts else None

    def index_sources(self, resource: str) -> list[pd.DataFrame | Path]:
        """What ``adopt`` took of ``resource``'s kept columns (frames, or their files), handed
        over: another process may build the index from the files (``index_of``)."""
        return self._index.pop(resource, [])

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


def index_of(sources: list[pd.DataFrame | Path]) -> pd.DataFrame:
    """One row per id (its newest version) of kept columns ``adopt`` took (the list is
    emptied as it is read)."""
    frames = [read_part(s) if isinstance(s, Path) else s for s in sources]
    sources.clear()
    return newest(frames)


def read_part(path: Path) -> pd.DataFrame:
    """A frame ``spill`` wrote (in any process of the run)."""
    with open(path, "rb") as spilled:
        return pickle.load(spilled)  # noqa: S301 - written by spill(), in a private temp dir


def spill(frame: pd.DataFrame, path: Path, keep: Sequence[str] | None = None) -> pd.DataFrame:
    """Write ``frame`` to the scratch file ``path``; return its ``keep`` columns (None: all),
    copied, so the other columns' values are freed with the frame."""
    _dump(frame, path)
    return shared_values(kept(frame, keep).copy())


def spill_index(index: pd.DataFrame, path: Path) -> Path:
    """Kept columns ``spill`` gave, written beside its file: a worker hands over the path, and
    the process that diffs the snapshot reads them (not the run's, which never holds them)."""
    index_path = path.with_name(path.stem + ".index.pickle")
    # with the memo: the values ``shared_values`` shares are read back shared
    _dump(index, index_path, memo=True)
    return index_path


def _dump(frame: pd.DataFrame, path: Path, memo: bool = False) -> None:
    with open(path, "wb") as out:  # a private scratch file, read back by this run only
        pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
        # no memo: a frame holds no cycles, and its strings are each their own object; the
        # memo's entry per string took 2/3 of the time
        pickler.fast = not memo
        pickler.dump(frame)


def shared_values(frame: pd.DataFrame, few: int = 256) -> pd.DataFrame:
    """``frame`` with each text column of at most ``few`` distinct values (a status, an owner
    reference) holding one object per value instead of one per row: parsed, every row's
    string is its own object (~60 bytes); and a pickle of shared objects carries each once."""
    for name in frame.columns:
        column = frame[name]
        if not (column.dtype == object or pd.api.types.is_string_dtype(column.dtype)):
            continue
        if column.iloc[:1000].nunique(dropna=True) > few // 4:  # plainly not few
            continue
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        if len(uniques) > few:
            continue
        values = column.to_numpy(dtype=object, copy=True)
        present = codes >= 0  # (a missing value stays as it was)
        values[present] = np.asarray(uniques, dtype=object)[codes[present]]
        frame[name] = pd.Series(values, index=frame.index, dtype=column.dtype)
    return frame


def kept(frame: pd.DataFrame, keep: Sequence[str] | None) -> pd.DataFrame:
    """The ``keep`` columns of ``frame``, in its order (None: all of them)."""
    return frame if keep is None else frame[[c for c in frame.columns if c in keep]]
