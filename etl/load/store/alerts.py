"""What monitoring keeps in the store: the alert conditions' state (so a message goes out once
per change, whichever process runs next)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from etl.load import schema
from etl.load.store.base import StoreBase
from etl.load.upsert import upsert


class AlertBook(StoreBase):
    def alert_states(self) -> dict[str, dict[str, Any]]:
        """condition -> its row (firing, figure, threshold, run_id, changed_at, pending)."""
        table = schema.alert_state
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.changed_at)).mappings().all()
        return {row["condition"]: dict(row) for row in rows}

    def save_alert_states(self, rows: list[dict[str, Any]]) -> None:
        import pandas as pd  # noqa: PLC0415

        columns = ["condition", "firing", "figure", "threshold", "run_id", "changed_at", "pending"]
        frame = pd.DataFrame(rows, columns=columns)
        with self.transaction() as conn:
            upsert(conn, schema.alert_state, frame, key=["condition"], update=columns[1:])
