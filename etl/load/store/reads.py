"""The read side: a record's activity feed (chats and notes) and the Chat cards' records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import and_, func, literal, or_, select, union_all

from etl.load import schema
from etl.load.store.base import StoreBase, _utc
from etl.load.upsert import select_in

if TYPE_CHECKING:
    import pandas as pd


class ReadSide(StoreBase):
    """What ``chatsell feed`` and the widget export read: records, their feed, users."""

    def lead_by_sell_id(self, sell_id: int) -> int | None:
        """The chat-created lead pushed to Sell as ``sell_id`` (``feed lead:<sell_id>``)."""
        leads = schema.leads
        with self.engine.connect() as conn:
            return conn.execute(
                select(leads.c.id).where(leads.c.origin == "chat", leads.c.sell_id == sell_id)
            ).scalar()

    def record_exists(self, record_type: str, record_id: int) -> bool:
        table = {"lead": schema.leads, "contact": schema.contacts, "deal": schema.deals}[
            record_type
        ]
        with self.engine.connect() as conn:
            return (
                conn.execute(select(table.c.id).where(table.c.id == record_id)).first() is not None
            )

    def records_by_email(self, email_normalized: str) -> list[tuple[str, int]]:
        found = []
        with self.engine.connect() as conn:
            for record_type, table in (("lead", schema.leads), ("contact", schema.contacts)):
                ids = conn.execute(
                    select(table.c.id)
                    .where(table.c.email_normalized == email_normalized)
                    .order_by(table.c.id)
                )
                found.extend((record_type, int(i)) for (i,) in ids)
        return found

    def feed(
        self,
        records: list[tuple[str, int]],
        *,
        kind: str = "all",
        user_id: int | None = None,
        team: str | None = None,
        group: str | None = None,
        limit: int = 50,
    ) -> tuple[pd.DataFrame, int]:
        """(newest ``limit`` feed items, how many match) for the records: chats and notes.

        Filters apply to the agent's Sell user (a note's author): user, team name, group name.
        """
        import pandas as pd  # noqa: PLC0415

        users = schema.users
        parts = []
        if kind in ("chat", "all"):
            a = schema.activities
            parts.append(
                select(
                    literal("chat").label("type"),
                    a.c.chat_id,
                    a.c.record_type,
                    a.c.record_id,
                    a.c.started_at.label("at"),
                    a.c.ended_at,
                    a.c.agent_names,
                    a.c.visitor_name,
                    a.c.record_name,
                    a.c.transcript_url,
                    a.c.message_count,
                    a.c.tags,
                    literal(None).label("content"),
                    a.c.agent_user_id.label("user_id"),
                    users.c.name.label("user_name"),
                    users.c.team_name,
                    users.c.group_name,
                )  # fmt: skip
                .select_from(a.outerjoin(users, users.c.id == a.c.agent_user_id))
                .where(
                    _records_clause(a, records),
                    *_user_filters(a.c.agent_user_id, users, user_id, team, group),
                )
            )
        if kind in ("note", "all"):
            n = schema.notes
            parts.append(
                select(
                    literal("note").label("type"),
                    n.c.chat_id,
                    n.c.record_type,
                    n.c.record_id,
                    n.c.created_at.label("at"),
                    literal(None).label("ended_at"),
                    literal(None).label("agent_names"),
                    literal(None).label("visitor_name"),
                    literal(None).label("record_name"),
                    literal(None).label("transcript_url"),
                    literal(None).label("message_count"),
                    literal(None).label("tags"),
                    n.c.content,
                    n.c.creator_id.label("user_id"),
                    users.c.name.label("user_name"),
                    users.c.team_name,
                    users.c.group_name,
                )  # fmt: skip
                .select_from(n.outerjoin(users, users.c.id == n.c.creator_id))
                .where(
                    _records_clause(n, records),
                    *_user_filters(n.c.creator_id, users, user_id, team, group),
                )
            )
        if not parts:
            return pd.DataFrame(), 0
        union = parts[0] if len(parts) == 1 else union_all(*parts)
        feed = union.subquery()
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(feed)).scalar_one()
            result = conn.execute(
                select(feed).order_by(feed.c.at.desc(), feed.c.chat_id).limit(limit)
            )
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        return _utc(frame, ("at", "ended_at")), int(total)

    def user_id_for(self, ref: str) -> int | None:
        """A Sell user by id, email or name (case-insensitive)."""
        users = schema.users
        text_ref = ref.strip()
        with self.engine.connect() as conn:
            if text_ref.isdigit():
                row = conn.execute(select(users.c.id).where(users.c.id == int(text_ref))).first()
            else:
                lowered = text_ref.lower()
                row = conn.execute(
                    select(users.c.id).where(
                        or_(
                            func.lower(users.c.email) == lowered,
                            func.lower(users.c.name) == lowered,
                        )
                    )
                ).first()
        return int(row[0]) if row else None

    def chat_emails(self) -> list[str]:
        """Every normalized visitor email seen in chats."""
        chats = schema.chats
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(chats.c.email_normalized)
                .where(chats.c.email_normalized.is_not(None))
                .distinct()
            )
            return sorted(r[0] for r in rows)

    def card_records(self, emails: list[str]) -> dict[str, pd.DataFrame]:
        """Full lead and contact rows with these emails, and users (for owner names)."""
        import pandas as pd  # noqa: PLC0415

        out = {}
        with self.engine.connect() as conn:
            for name, table in (("leads", schema.leads), ("contacts", schema.contacts)):
                out[name] = select_in(
                    conn, table, ["email_normalized"], emails, [c.name for c in table.c]
                )
            out["users"] = pd.read_sql(select(schema.users.c.id, schema.users.c.name), conn)
        return out


def _records_clause(table, records: list[tuple[str, int]]):
    return or_(*[and_(table.c.record_type == t, table.c.record_id == int(i)) for t, i in records])


def _user_filters(column, users, user_id: int | None, team: str | None, group: str | None) -> list:
    filters = []
    if user_id is not None:
        filters.append(column == user_id)
    if team:
        filters.append(func.lower(users.c.team_name) == team.strip().lower())
    if group:
        filters.append(func.lower(users.c.group_name) == group.strip().lower())
    return filters
