"""The Sell outbox as ``push`` reads and moves it: rows oldest first with the store's current
content, each row's status committed on its own (``sending`` before its request, ``sent`` with
the destination's id after), and a pushed lead's id kept on the lead."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select, update

from etl.load import schema
from etl.load.store.base import StoreBase


class OutboxBook(StoreBase):
    def outbox_rows(
        self, statuses: tuple[str, ...], after_id: int, limit: int
    ) -> list[dict[str, Any]]:
        """Rows in ``statuses`` after ``after_id``, oldest first, ``limit`` at most."""
        o = schema.sell_outbox
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(o)
                .where(o.c.status.in_(statuses), o.c.id > after_id)
                .order_by(o.c.id)
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def outbox_counts(self) -> dict[str, int]:
        """Rows by status (every status, zero included)."""
        o = schema.sell_outbox
        with self.engine.connect() as conn:
            found = dict(conn.execute(select(o.c.status, func.count()).group_by(o.c.status)).all())
        return {status: int(found.get(status, 0)) for status in schema.OUTBOX_STATUSES}

    def push_counts(self) -> dict[str, int]:
        """Outbox rows not yet in Sell (pending or sending) and failed (the metrics')."""
        counts = self.outbox_counts()
        return {"pending": counts["pending"] + counts["sending"], "failed": counts["failed"]}

    def outbox_content(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The store's current row a outbox row is about (None: it is gone)."""
        kind = row["kind"]
        if kind == "lead":
            table, where = schema.leads, [schema.leads.c.id == row["record_id"]]
        elif kind == "phone":
            return {}
        else:
            table = {"activity": schema.activities, "note": schema.notes,
                     "notification": schema.notifications}[kind]  # fmt: skip
            where = [
                table.c.chat_id == row["chat_id"],
                table.c.record_type == row["record_type"],
                table.c.record_id == row["record_id"],
            ]
            if kind == "note":
                where.append(table.c.kind == "chat_notes")
            elif kind == "notification":
                where.append(table.c.kind == row["dedupe_key"].rsplit(":", 1)[1])
        with self.engine.connect() as conn:
            found = conn.execute(select(table).where(and_(*where)).limit(1)).mappings().first()
            return dict(found) if found else None

    def destination_id(self, record_type: str, record_id: int) -> int | None:
        """The record's id in Sell: its own, or a lead chatsell created once pushed (else None)."""
        if record_type != "lead" or record_id > 0:
            return int(record_id)
        leads = schema.leads
        with self.engine.connect() as conn:
            found = conn.execute(select(leads.c.sell_id).where(leads.c.id == record_id)).scalar()
            return int(found) if found is not None else None

    def claimed_ids(self, kind: str, record_type: str, record_id: int) -> set[int]:
        """Destination ids already taken by sent rows of this kind about this record (so a search
        for a lost answer does not adopt another row's item)."""
        o = schema.sell_outbox
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(o.c.sell_id).where(
                    o.c.kind == kind,
                    o.c.record_type == record_type,
                    o.c.record_id == record_id,
                    o.c.sell_id.is_not(None),
                )  # fmt: skip
            )
            return {int(r[0]) for r in rows}

    def mark_outbox(self, row_id: int, status: str, **values: Any) -> None:
        """Commit a row's new status (``sending`` counts an attempt); with ``sell_id`` of a lead
        row, the lead keeps it too."""
        o = schema.sell_outbox
        changes: dict[str, Any] = {"status": status, **values}
        if status == "sending":
            changes["attempts"] = o.c.attempts + 1
        if status == "sent":
            changes.setdefault("sent_at", datetime.now(UTC))
        with self.transaction() as conn:
            conn.execute(update(o).where(o.c.id == row_id).values(**changes))
            if status == "sent" and values.get("sell_id") is not None:
                kind, record_id = conn.execute(
                    select(o.c.kind, o.c.record_id).where(o.c.id == row_id)
                ).one()
                if kind == "lead":
                    conn.execute(
                        update(schema.leads)
                        .where(schema.leads.c.id == record_id)
                        .values(sell_id=int(values["sell_id"]))
                    )

    def pushed_leads(self) -> dict[int, int]:
        """Sell id -> the chat-created lead pushed there (a later snapshot holds it as its own)."""
        leads = schema.leads
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(leads.c.sell_id, leads.c.id).where(
                    leads.c.origin == "chat", leads.c.sell_id.is_not(None)
                )
            )
            return {int(sell_id): int(lead_id) for sell_id, lead_id in rows}
