"""The one dialect dispatch point for inserts and upserts, and frames to DB rows.

``INSERT ... ON CONFLICT`` is spelled the same on SQLite and PostgreSQL through their dialect
``insert()``; three traps handled here: ``onupdate`` does not fire on conflict (callers set
what changes in ``set_``), ``DO NOTHING`` returns nothing for existing rows (callers re-select
by natural key), and PostgreSQL refuses a batch that proposes one key twice, so every batch is
deduplicated by key first (the last row of a key wins, as SQLite would do).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Table, and_, or_, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

BATCH = 5_000


def dialect_insert(conn: Connection, table: Table):
    """``insert(table)`` of the connection's dialect, which has ``on_conflict_do_*``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"chatsell supports SQLite and PostgreSQL, not {conn.dialect.name}")


def frame_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows for executemany: NaN/NaT/NA become None, numpy scalars become Python ones."""
    if frame.empty:
        return []
    lists = [_column_values(frame[name]) for name in columns]
    return [dict(zip(columns, values, strict=True)) for values in zip(*lists, strict=True)]


def _column_values(series: pd.Series) -> list[Any]:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series.dt.to_pydatetime().tolist() if len(series) else []
        return [None if pd.isna(v) else v for v in values]
    out = series.astype(object)
    return out.where(series.notna(), None).tolist()


def dedupe(frame: pd.DataFrame, key: Sequence[str]) -> pd.DataFrame:
    """One row per key (the last), so PostgreSQL accepts the batch."""
    return frame.drop_duplicates(list(key), keep="last")


def upsert(
    conn: Connection,
    table: Table,
    frame: pd.DataFrame,
    key: Sequence[str],
    update: Sequence[str] | None = None,
    where: ColumnElement[bool] | None = None,
    set_: dict[str, Any] | None = None,
) -> None:
    """Insert rows; on a key conflict update ``update`` columns (or do nothing when empty).

    ``where`` guards the update (e.g. only a newer version may overwrite); ``set_`` overrides
    how individual columns are set.
    """
    if frame.empty:
        return
    frame = dedupe(frame, key)
    columns = [c for c in frame.columns if c in table.c]
    for start in range(0, len(frame), BATCH):
        rows = frame_rows(frame.iloc[start : start + BATCH], columns)
        stmt = dialect_insert(conn, table)
        if update:
            assignments = {name: stmt.excluded[name] for name in update}
            assignments.update(set_ or {})
            stmt = stmt.on_conflict_do_update(
                index_elements=list(key), set_=assignments, where=where
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
        conn.execute(stmt, rows)


def select_in(
    conn: Connection,
    table: Table,
    key: Sequence[str],
    values: Iterable[Any] | pd.DataFrame,
    columns: Sequence[str],
) -> pd.DataFrame:
    """Rows of ``table`` whose ``key`` is among ``values``, in batches that fit any dialect."""
    if isinstance(values, pd.DataFrame):
        keys = list(values[list(key)].drop_duplicates().itertuples(index=False, name=None))
    else:
        keys = list(dict.fromkeys(values))
    frames = []
    selected = [table.c[name] for name in columns]
    for start in range(0, len(keys), BATCH):
        part = keys[start : start + BATCH]
        if len(key) == 1:
            condition = table.c[key[0]].in_(part)
        elif conn.dialect.name == "postgresql":
            condition = tuple_(*[table.c[k] for k in key]).in_(part)
        else:
            condition = or_(
                *[and_(*[table.c[k] == v for k, v in zip(key, row, strict=True)]) for row in part]
            )
        result = conn.execute(table.select().with_only_columns(*selected).where(condition))
        frames.append(pd.DataFrame(result.fetchall(), columns=list(columns)))
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
