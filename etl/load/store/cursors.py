"""Pull cursors: where the next ``chatsell pull`` of each source starts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from etl.load import schema
from etl.load.store.base import StoreBase
from etl.load.upsert import dialect_insert


class PullCursors(StoreBase):
    """The pull cursors, one JSON text per name."""

    def pull_cursor(self, name: str) -> str | None:
        """Where the next ``chatsell pull`` of ``name`` starts (JSON text), or None."""
        table = schema.pull_cursors
        with self.engine.connect() as conn:
            return conn.execute(select(table.c.value).where(table.c.name == name)).scalar()

    def save_pull_cursor(self, name: str, value: str) -> None:
        """Commit a pull cursor; called only once the page it covers is safely on disk."""
        table = schema.pull_cursors
        with self.transaction() as conn:
            stmt = dialect_insert(conn, table).values(
                name=name, value=value, updated_at=datetime.now(UTC)
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[table.c.name],
                    set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
                )
            )
