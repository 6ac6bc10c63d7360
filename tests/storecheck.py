"""Dumping a store's data tables, to compare two stores or one store before and after."""

from __future__ import annotations

import sqlalchemy as sa

from etl.load import schema

# History of runs, not data: a killed-and-resumed run or a rerun adds rows here by design.
HISTORY = {
    "runs",
    "run_outcomes",
    "rejects",
    "run_lock",
    "source_files",
    "alembic_version",
    "backfill_windows",
    "pull_cursors",
}
RUN_COLUMNS = {
    "imported_run_id",
    "created_run_id",
    "run_id",
    "updated_run_id",
    "loaded_run_id",
    "queued_run_id",
    "loaded_at",
    "changed_at",
    "created_at",
}
# Surrogate keys whose values are the order rows went in, not data: the outbox's row id counts
# inserts (a PostgreSQL sequence even counts rolled-back ones and ON CONFLICT DO NOTHING); its
# identity is its UNIQUE dedupe_key. Dropped with the run columns.
SURROGATE_COLUMNS = {"sell_outbox": {"id"}}


def dump(
    url: str,
    *,
    include_history: bool = False,
    drop_run_columns: bool = False,
    drop: frozenset[str] = frozenset(),
) -> dict[str, list[tuple]]:
    """Every row of every table, sorted, as plain tuples (timestamps as UTC ISO text)."""
    engine = sa.create_engine(url)
    out: dict[str, list[tuple]] = {}
    try:
        with engine.connect() as conn:
            for name, table in schema.metadata.tables.items():
                if name in HISTORY and not include_history:
                    continue
                surrogate = SURROGATE_COLUMNS.get(name, set())
                columns = [
                    c
                    for c in table.c
                    if not (drop_run_columns and (c.name in RUN_COLUMNS or c.name in surrogate))
                    and c.name not in drop
                ]
                rows = conn.execute(sa.select(*columns)).all()
                out[name] = sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)
    finally:
        engine.dispose()
    return out


def _plain(value):
    if hasattr(value, "isoformat"):
        if getattr(value, "tzinfo", None) is not None:
            value = value.astimezone(__import__("datetime").UTC).replace(tzinfo=None)
        return value.isoformat()
    return value


def rows(url: str, sql: str, **params) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params).all()]
    finally:
        engine.dispose()
