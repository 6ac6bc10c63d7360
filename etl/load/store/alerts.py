"""What monitoring keeps in the store: the alert conditions' state (so a message goes out once
per change, whichever process runs next), and the outbox counts the metrics show."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, inspect, select

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

    def push_counts(self) -> dict[str, int]:
        """Outbox rows pending and failed: zero while the store has no ``sell_outbox`` (the push
        to Sell, SPEC section 9, fills it)."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("sell_outbox"):
                return {"pending": 0, "failed": 0}
            outbox = schema.metadata.tables.get("sell_outbox")
            if outbox is None:
                return {"pending": 0, "failed": 0}
            counts = dict(
                conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
            )
        return {
            "pending": int(counts.get("pending", 0) + counts.get("sending", 0)),
            "failed": int(counts.get("failed", 0)),
        }
