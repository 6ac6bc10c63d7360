"""The CRM as a sync reads it: the match index's tables, agents, departments, stored chats."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, literal, select

from etl.load import schema, writers
from etl.load.store.base import FETCH_ROWS, StoreBase, _utc, columnar_frame
from etl.load.upsert import select_in
from etl.procs import paused_gc

if TYPE_CHECKING:
    import pandas as pd

# The CRM columns a run holds in memory (the match index, diffs, owners), per table
CRM_COLUMNS: dict[str, tuple[str, ...]] = {
    "leads": ("id", "owner_id", "name", "status", "email_normalized", "phone", "sell_hash", "origin",
              "origin_chat_id", "created_run_id"),
    "contacts": ("id", "owner_id", "is_organization", "contact_id", "name", "email_normalized", "phone",
                 "sell_hash"),
    "deals": ("id", "owner_id", "name", "contact_id", "organization_id", "sell_hash"),
    "users": ("id", "name", "email", "email_normalized", "status", "team_name", "group_id",
              "group_name", "sell_hash"),
    "lead_conversions": ("id", "lead_id", "individual_id", "organization_id", "deal_id", "sell_hash"),
    "sell_notes": ("id", "sell_hash"),
}  # fmt: skip
# what the match index is built from: all of it but the hashes, which only the Sell diff reads
# (~120 bytes a record as Python strings: 170 MB of a --full run's 1.4M records)
INDEX_COLUMNS = frozenset(c for cols in CRM_COLUMNS.values() for c in cols) - {"sell_hash"}


# text ``crm_compact`` holds as StringDType (the rest as crm_frames types it)
COMPACT_TEXT = frozenset(
    {"name", "email_normalized", "phone", "status", "origin", "origin_chat_id"}
)


def _is_id(column: str) -> bool:
    """A column ``crm_frames`` types Int64 (a record's id)."""
    return column == "id" or (column.endswith("_id") and column != "origin_chat_id")


# text columns of a few distinct values: built with one string object a value (the origins of
# 1.7M leads as a string each were 90 MB of the index build's peak at 3M chats)
_FEW_VALUES = frozenset({"origin", "status"})


class CompactText:
    """A text column held in a ``StringDType`` array; ``series()`` gives it as ``crm_frames``
    would have read it (built now: its strings are made together, and freed together)."""

    def __init__(self, column: str, values) -> None:
        self.column, self.values = column, values

    def series(self) -> pd.Series:
        values = self.values.astype(object).tolist()
        if self.column in _FEW_VALUES:  # one string object a distinct value, not one a row
            values = [value if value is None else sys.intern(value) for value in values]
        return column_series(self.column, values)


def column_series(column: str, values: list[Any]) -> pd.Series:
    """``values`` as ``columnar_frame`` makes a column of them (the same dtype inference)."""
    import pandas as pd  # noqa: PLC0415

    if not values:
        return pd.DataFrame([], columns=[column])[column]  # object, as from no rows at all
    return pd.DataFrame({column: values}, columns=[column])[column]


class CrmReads(StoreBase):
    """What a sync reads of the CRM and of the chats it stored before."""

    def crm_frames(
        self,
        names: Iterable[str] | None = None,
        only: Iterable[str] | None = None,
        hashed: bool = False,
    ) -> dict[str, pd.DataFrame]:
        """The CRM as the match index needs it: leads, contacts, deals, users, lead conversions.

        ``only``: just these of each table's columns (``id`` always), e.g. what a diff needs;
        ``hashed``: only the rows with a ``sell_hash`` (records Sell exported, not the leads
        chatsell created from chats).
        """
        wanted = CRM_COLUMNS
        frames = {}
        if names is not None:
            wanted = {name: wanted[name] for name in names}
        if only is not None:
            keep = {"id", *only}
            wanted = {name: tuple(c for c in cols if c in keep) for name, cols in wanted.items()}
        # streamed: PostgreSQL through a server-side cursor, else psycopg receives all of a
        # million-row table before the first fetch (the run's peak, in a --full run)
        with (
            paused_gc(),
            self.engine.connect().execution_options(
                stream_results=True, max_row_buffer=FETCH_ROWS
            ) as conn,
        ):
            for name, columns in wanted.items():
                table = schema.metadata.tables[name]
                query = select(*[table.c[c] for c in columns]).order_by(table.c.id)
                if hashed:
                    query = query.where(table.c.sell_hash.is_not(None))
                result = conn.execute(query)
                frame = columnar_frame(result, columns)
                for column in columns:
                    if _is_id(column):
                        frame[column] = frame[column].astype("Int64")
                frames[name] = frame
        return frames

    def crm_compact(self, name: str, only: Iterable[str]) -> tuple[dict[str, Any], int]:
        """One CRM table's ``only`` columns (``id`` always) as ``crm_frames`` reads them, but its
        text (``COMPACT_TEXT``) held in ``StringDType`` arrays, converted a fetch at a time: a
        million rows' strings are never Python objects all at once. (columns, row count);
        ``etl.transform.sell.CompactTable`` gives the frame's columns back one at a time."""
        import numpy as np  # noqa: PLC0415
        import pandas as pd  # noqa: PLC0415

        compact = np.dtypes.StringDType(na_object=None)  # (as the match index holds text)
        keep = {"id", *only}
        columns = tuple(c for c in CRM_COLUMNS[name] if c in keep)
        text = [c in COMPACT_TEXT for c in columns]
        # ids, as crm_frames types them: an Int64 array a fetch (a Python int a value was
        # ~36 bytes: 180 MB at the 1.7M leads of a 3M-chat store, the index build's peak)
        ids = [_is_id(c) for c in columns]
        parts: list[list[Any]] = [[] for _ in columns]
        rows = 0
        table = schema.metadata.tables[name]
        with (
            paused_gc(),
            self.engine.connect().execution_options(
                stream_results=True, max_row_buffer=FETCH_ROWS
            ) as conn,
        ):
            result = conn.execute(select(*[table.c[c] for c in columns]).order_by(table.c.id))
            while batch := result.fetchmany(FETCH_ROWS):
                rows += len(batch)
                for target, is_text, is_id, values in zip(
                    parts, text, ids, zip(*batch, strict=True), strict=True
                ):
                    if is_text:
                        target.append(np.array(values, dtype=compact))
                    elif is_id:
                        target.append(pd.Series(pd.array(values, dtype="Int64")))
                    else:
                        target.extend(values)
        out: dict[str, Any] = {}
        for column, is_text, is_id, values in zip(columns, text, ids, parts, strict=True):
            if is_text:
                joined = np.concatenate(values) if values else np.zeros(0, dtype=compact)
                out[column] = CompactText(column, joined)
            elif is_id:
                out[column] = (
                    pd.concat(values, ignore_index=True).rename(column)
                    if values
                    else column_series(column, []).astype("Int64")
                )
            else:
                out[column] = column_series(column, values)
        return out, rows

    def agents_frame(self) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415

        with self.engine.connect() as conn:
            return pd.read_sql(select(schema.agents), conn)

    def departments_frame(self) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415

        with self.engine.connect() as conn:
            return pd.read_sql(select(schema.departments), conn)

    def chat_versions(self, chat_ids: Iterable[str]) -> pd.DataFrame:
        """(chat_id, version, email_normalized) of the chats among these the store holds."""
        with self.engine.connect() as conn:
            return writers.chat_versions(conn, chat_ids)

    def stored_chats(self, chat_ids: Iterable[str], columns: list[str]) -> pd.DataFrame:
        """Stored chats by id; a transcript kept on the chat's activities is read from there."""
        with self.engine.connect() as conn:
            frame = select_in(
                conn, schema.chats, ["chat_id"], chat_ids, columns, _STORED_TRANSCRIPT
            )
        return _utc(frame, ("started_at", "ended_at", "updated_at"))

    def chats_by_email(self, emails: Iterable[str], columns: list[str]) -> pd.DataFrame:
        """Stored chats by normalized email, transcripts as ``stored_chats`` reads them."""
        with self.engine.connect() as conn:
            frame = select_in(
                conn, schema.chats, ["email_normalized"], emails, columns, _STORED_TRANSCRIPT
            )
        return _utc(frame, ("started_at", "ended_at", "updated_at"))

    def pool_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(schema.pool_state)).mappings()]

    def run_origins(self, run_id: int) -> pd.Series:
        """Lead id -> origin chat id of the leads run ``run_id`` created (a resumed run meets
        them): what ``build_index`` finds in the leads' columns, without reading every lead's
        origin chat (1.2M chat ids at 3M chats, held through the index build)."""
        import numpy as np  # noqa: PLC0415
        import pandas as pd  # noqa: PLC0415

        leads = schema.leads
        query = (
            select(leads.c.id, leads.c.origin_chat_id)
            .where(leads.c.created_run_id == run_id, leads.c.origin_chat_id.is_not(None))
            .order_by(leads.c.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        # (typed as ``build_index`` types them: inferred from an object array)
        return pd.Series(
            np.array([chat for _id, chat in rows], dtype=object),
            index=np.array([int(lead) for lead, _chat in rows], dtype="int64"),
        )

    def has_chats(self) -> bool:
        return not self.empty_tables(["chats"])

    def empty_tables(self, names: Iterable[str]) -> frozenset[str]:
        """Which of these tables hold no row."""
        with self.engine.connect() as conn:
            return frozenset(
                name
                for name in names
                if conn.execute(
                    select(literal(1)).select_from(schema.metadata.tables[name]).limit(1)
                ).first()
                is None
            )

    def rematch_queue(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(schema.rematch_queue.c.email_normalized))}


def _stored_transcript() -> dict[str, Any]:
    """A chat row's transcript, or its activities' (``writers.chat_rows`` writes it once)."""
    chats, held = schema.chats, schema.activities.alias("held")
    from_activity = (
        select(held.c.transcript).where(held.c.chat_id == chats.c.chat_id).limit(1)
    ).scalar_subquery()
    return {"transcript": func.coalesce(chats.c.transcript, from_activity)}


_STORED_TRANSCRIPT = _stored_transcript()
