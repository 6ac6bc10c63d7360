"""The one dialect dispatch point for inserts and upserts, and frames to DB rows.

``INSERT ... ON CONFLICT`` is spelled the same on SQLite and PostgreSQL through their dialect
``insert()``; three traps handled here: ``onupdate`` does not fire on conflict (callers set
what changes in ``set_``), ``DO NOTHING`` returns nothing for existing rows (callers re-select
by natural key), and PostgreSQL refuses a batch that proposes one key twice, so every batch is
deduplicated by key first (the last row of a key wins, as SQLite would do).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, MetaData, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

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
    import pandas as pd  # noqa: PLC0415

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series.dt.to_pydatetime().tolist() if len(series) else []
        return [None if pd.isna(v) else v for v in values]
    out = series.astype(object)
    return out.where(series.notna(), None).tolist()


def dedupe(frame: pd.DataFrame, key: Sequence[str]) -> pd.DataFrame:
    """One row per key (the last), so PostgreSQL accepts the batch."""
    return frame.drop_duplicates(list(key), keep="last")


@dataclass
class Rows:
    """A frame's rows as the driver takes them, made ready where the store need not be read:
    one row per key (the last), in key order, each column an object array of driver values
    (``_db_array``), constants included; ``tuples`` the rows themselves, made once ``freeze``
    is called. A writer process gets a chunk's rows this way from the planner, which has
    time to spare while the writer writes: binding them is then all the writer does."""

    columns: list[str]
    values: dict[str, np.ndarray]
    length: int
    tuples: list[tuple] | None = None

    def __len__(self) -> int:
        return self.length

    def freeze(self) -> Rows:
        """The rows as tuples, in ``columns`` order; the column arrays go."""
        if self.tuples is not None:
            return self
        lists = [self.values[name].tolist() for name in self.columns]
        return Rows(list(self.columns), {}, self.length, list(zip(*lists, strict=True)))

    def __reduce__(self):
        if self.tuples is None:
            return (Rows, (self.columns, self.values, self.length))
        # frozen rows go to a writer process: pickled on their own, without the pickler's
        # memo (a dict entry for each of a chunk's ~10^5 strings and tuples): 5x faster, and
        # as plain rows of str/int/float/None/bytes they hold no cycle the memo would catch
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.fast = True
        pickler.dump(self.tuples)
        return (_thawed, (self.columns, self.length, buffer.getvalue()))

    def batches(self, names: Sequence[str]) -> Iterable[list[tuple]]:
        """The rows as tuples of ``names``, BATCH at a time."""
        if self.tuples is not None:
            if list(names) == self.columns:
                for start in range(0, self.length, BATCH):
                    yield self.tuples[start : start + BATCH]
                return
            at = [self.columns.index(name) for name in names]
            for start in range(0, self.length, BATCH):
                yield [tuple(row[i] for i in at) for row in self.tuples[start : start + BATCH]]
            return
        for start in range(0, self.length, BATCH):
            lists = [self.values[name][start : start + BATCH].tolist() for name in names]
            yield list(zip(*lists, strict=True))


def prepare_rows(
    frame: pd.DataFrame,
    table: Table,
    key: Sequence[str],
    dialect: str,
    constants: Mapping[str, Any] | None = None,
) -> Rows:
    """``frame``'s rows for ``upsert`` into ``table`` on ``dialect``: deduplicated by ``key``
    (the last row wins), in key order, as the driver takes them; ``constants``: columns with
    one value for every row (a run id), added without copying the frame."""
    import pandas as pd  # noqa: PLC0415

    given = dict(constants or {})
    taken = [c for c in frame.columns if c in table.c and c not in given]
    # in the table's order, which an INSERT binds its values in: the writer's rows then go to
    # the driver as they are (a tuple rebuilt for every row otherwise: ~3 s of a 1M first sync)
    columns = [c.name for c in table.c if c.name in given or c.name in taken]
    columns += [name for name in given if name not in table.c]
    if frame.empty:
        return Rows(columns, {}, 0, [])
    # the column lists, each in the driver's form, in key order, one row per key (the last):
    # what deduplicating and sorting the frame gave, without copying the frame twice
    order = _key_order(frame, [k for k in key if k not in given])  # (a constant orders nothing)
    values = {c: _db_array(frame[c], dialect)[order] for c in taken}
    for name, value in given.items():
        values[name] = _db_array(pd.Series([value]), dialect).repeat(len(order))
    return Rows(columns, values, len(order))


def upsert(
    conn: Connection,
    table: Table,
    frame: pd.DataFrame | Rows,
    key: Sequence[str],
    update: Sequence[str] | None = None,
    where: ColumnElement[bool] | None = None,
    set_: dict[str, Any] | None = None,
    index_where: ColumnElement[bool] | None = None,
    constants: Mapping[str, Any] | None = None,
) -> int:
    """Insert rows; on a key conflict update ``update`` columns (or do nothing when empty).

    ``frame``: a frame, or its ``prepare_rows`` (then ``constants`` are in it already).
    ``where`` guards the update (e.g. only a newer version may overwrite); ``set_`` overrides
    how individual columns are set; ``constants``: columns with one value for every row (a run
    id), added without copying the frame. Rows go in key order (faster B-tree inserts).
    PostgreSQL batches are COPYed into a temporary table and upserted in one ``INSERT ...
    SELECT``; SQLite batches go through one prepared statement (``executemany``). Returns the
    rows the database inserted or updated (its own count: a guarded or ``DO NOTHING`` conflict
    counts none).
    """
    dialect = conn.dialect.name
    rows = frame if isinstance(frame, Rows) else prepare_rows(frame, table, key, dialect, constants)
    if not len(rows):
        return 0
    columns = rows.columns
    if dialect == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        return _copy_upsert(conn, table, rows, key, update, where, set_, index_where)
    stmt = dialect_insert(conn, table).values({c: bindparam(c) for c in columns})
    stmt = _on_conflict(stmt, key, update, where, set_, index_where)
    compiled = stmt.compile(dialect=conn.dialect)
    sql = str(compiled)
    positional = compiled.positional
    names = list(compiled.positiontup) if positional else columns
    written = 0
    for batch in rows.batches(names):
        if not positional:
            batch = [dict(zip(names, row, strict=True)) for row in batch]
        written += max(conn.exec_driver_sql(sql, batch).rowcount, 0)
    return written


def _thawed(columns: list[str], length: int, tuples: bytes) -> Rows:
    """Frozen ``Rows`` from their pickle (``Rows.__reduce__``)."""
    return Rows(columns, {}, length, pickle.loads(tuples))  # noqa: S301 - the planner's own bytes


def _key_order(frame: pd.DataFrame, key: Sequence[str]) -> np.ndarray:
    """Positions of the rows ``dedupe`` keeps, in the order a stable sort by ``key`` puts them."""
    import numpy as np  # noqa: PLC0415

    if not key:  # every row has the one key: the last wins
        return np.array([len(frame) - 1])
    keys = frame[list(key)].reset_index(drop=True)
    duplicated = keys.duplicated(list(key), keep="last")
    if duplicated.any():
        keys = keys[~duplicated.to_numpy()]
    if len(keys) > 1:
        keys = keys.sort_values(list(key), kind="stable")
    return keys.index.to_numpy()


COPY_MIN_ROWS = 200
_temp_tables: set[tuple[int, str]] = set()


def _on_conflict(stmt, key, update, where, set_, index_where=None):
    if update:
        assignments = {name: stmt.excluded[name] for name in update}
        assignments.update(set_ or {})
        return stmt.on_conflict_do_update(
            index_elements=list(key), index_where=index_where, set_=assignments, where=where
        )
    return stmt.on_conflict_do_nothing(index_elements=list(key), index_where=index_where)


def _copy_upsert(
    conn: Connection,
    table: Table,
    rows: Rows,
    key,
    update,
    where,
    set_,
    index_where,
) -> int:
    """COPY into a session temp table shaped like ``table``, then one set-based upsert."""
    temp = f"_load_{table.name}"
    raw = conn.connection.dbapi_connection
    if (id(raw), temp) not in _temp_tables:
        conn.exec_driver_sql(
            f'CREATE TEMP TABLE IF NOT EXISTS "{temp}" (LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
        )
        _temp_tables.add((id(raw), temp))
    conn.exec_driver_sql(f'TRUNCATE "{temp}"')
    columns = rows.columns
    names = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cursor, cursor.copy(f'COPY "{temp}" ({names}) FROM STDIN') as copy:
        for batch in rows.batches(columns):
            for row in batch:
                copy.write_row(row)
    staged = Table(temp, MetaData(), *[Column(c, table.c[c].type) for c in columns])
    stmt = dialect_insert(conn, table).from_select(columns, select(*[staged.c[c] for c in columns]))
    result = conn.execute(  # (an INSERT's rowcount is kept only when asked for)
        _on_conflict(stmt, key, update, where, set_, index_where),
        execution_options={"preserve_rowcount": True},
    )
    return max(result.rowcount, 0)


def _db_values(series: pd.Series, dialect: str) -> list[Any]:
    """A column as the driver takes it: None for missing, text for timestamps (SQLite keeps
    SQLAlchemy's own format, naive UTC; PostgreSQL parses ISO-8601 with the offset)."""
    return _db_array(series, dialect).tolist()


def _db_array(series: pd.Series, dialect: str) -> np.ndarray:
    """``_db_values`` as an object array (taken in key order before it becomes a list)."""
    import pandas as pd  # noqa: PLC0415

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return _stamps_text(series, dialect)
    out = series.to_numpy(dtype=object, na_value=None)
    if series.dtype == object and isinstance(_first_present(out), datetime):
        return _db_array(pd.to_datetime(series, utc=True), dialect)
    return out


def _first_present(values: np.ndarray) -> Any:
    """The first value that is not None (what ``dropna().iloc[0]`` gives, without a copy)."""
    for value in values:
        if value is not None:
            return value
    return None


def _stamps_text(series: pd.Series, dialect: str) -> np.ndarray:
    """Timestamps as ``2026-11-02 09:00:00.000000`` (SQLite) or ``2026-11-02T09:00:00.000000+00:00``
    (PostgreSQL), formatted by numpy in one pass (``strftime`` formats value by value)."""
    import numpy as np  # noqa: PLC0415

    stamps = series.dt.tz_convert("UTC") if series.dt.tz is not None else series
    micros = stamps.to_numpy(dtype="datetime64[us]")
    missing = np.isnat(micros)
    micros = np.where(missing, np.datetime64(0, "us"), micros)
    # fixed width (26 characters: 2026-11-02T09:00:00.000000): edit the characters in place
    text = np.datetime_as_string(micros, unit="us")
    if not len(text) or np.strings.str_len(text).max() != 26:  # a year past 9999: value by value
        fmt = "%Y-%m-%d %H:%M:%S.%f" if dialect == "sqlite" else "%Y-%m-%dT%H:%M:%S.%f+00:00"
        formatted = stamps.dt.strftime(fmt).astype(object).where(series.notna(), None)
        return formatted.to_numpy(dtype=object)
    suffix = "" if dialect == "sqlite" else "+00:00"
    chars = np.zeros((len(text), 26 + len(suffix)), dtype=np.uint32)
    chars[:, :26] = text.astype("<U26").view(np.uint32).reshape(len(text), 26)
    if dialect == "sqlite":
        chars[:, 10] = ord(" ")
    chars[:, 26:] = [ord(c) for c in suffix]
    out = chars.view(f"<U{26 + len(suffix)}").ravel().astype(object)
    out[missing] = None
    return out


def select_in(
    conn: Connection,
    table: Table,
    key: Sequence[str],
    values: Iterable[Any],
    columns: Sequence[str],
    expressions: Mapping[str, ColumnElement[Any]] | None = None,
) -> pd.DataFrame:
    """Rows of ``table`` whose ``key`` column is among ``values``, in batches that fit any dialect.

    One statement with an expanding IN parameter: compiled once and cached, whatever the batch.
    ``expressions`` reads some of ``columns`` through an expression instead of the column.
    """
    import pandas as pd  # noqa: PLC0415

    (column,) = key
    keys = list(dict.fromkeys(values))
    if not keys:
        return pd.DataFrame(columns=list(columns))
    given = expressions or {}
    stmt = select(*[given[n].label(n) if n in given else table.c[n] for n in columns]).where(
        table.c[column].in_(bindparam("keys", expanding=True))
    )
    frames = []
    for start in range(0, len(keys), BATCH):
        rows = conn.execute(stmt, {"keys": keys[start : start + BATCH]}).fetchall()
        # as tuples: a frame of Row objects asks each row for ``dtype`` (a failed key lookup,
        # an exception each) before it converts them to tuples itself
        frames.append(pd.DataFrame([tuple(row) for row in rows], columns=list(columns)))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
