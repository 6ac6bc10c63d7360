"""The CRM store's tables (SQLAlchemy Core). Alembic migrations create them; this is what
queries are written against, and a test checks the two agree.

Natural keys are PRIMARY KEY or UNIQUE constraints, so idempotency is the database's doing:
an activity is (chat_id, record_type, record_id); a note or notification is (chat_id,
record_type, record_id, kind); a lead created from chats is unique per email_normalized among
chat-created leads. Columns keep Zendesk Sell's names.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

RECORD_TYPES = ("lead", "contact", "deal")
_record_type_check = "record_type IN ('lead', 'contact', 'deal')"


def _ts(name: str, **kw) -> Column:
    return Column(name, DateTime(timezone=True), **kw)


def _party_columns() -> list[Column]:
    """Fields leads and contacts share."""
    return [
        Column("first_name", Text),
        Column("last_name", Text),
        Column("name", Text),
        Column("organization_name", Text),
        Column("title", Text),
        Column("email", Text),
        Column("email_normalized", Text, index=True),
        Column("phone", Text),
        Column("mobile", Text),
    ]


def _sell_tail() -> list[Column]:
    """Nested Sell values as JSON text, timestamps, and what was imported when."""
    return [
        Column("tags", Text),
        Column("custom_fields", Text),
        Column("address", Text),
        _ts("created_at"),
        _ts("updated_at"),
        Column("extra", Text),
        Column("sell_hash", Text),
        Column("imported_run_id", Integer),
    ]


users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text),
    Column("email", Text),
    Column("email_normalized", Text, index=True),
    Column("status", Text),
    Column("role", Text),
    Column("team_name", Text),
    Column("group_id", BigInteger),
    Column("group_name", Text),
    _ts("created_at"),
    _ts("updated_at"),
    Column("extra", Text),
    Column("sell_hash", Text),
    Column("imported_run_id", Integer),
)

leads = Table(
    "leads",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner_id", BigInteger),
    Column("owner_ref", Text),
    Column("creator_id", BigInteger),
    *_party_columns(),
    Column("status", Text),
    Column("source", Text),
    *_sell_tail(),
    Column("origin", Text, nullable=False, server_default="sell"),
    Column("origin_chat_id", Text),
    Column("created_run_id", Integer),
    Column("sell_id", BigInteger),  # a chat-created lead's id in Sell, once pushed (SPEC 9)
    CheckConstraint("origin IN ('sell', 'chat')", name="origin"),
    Index(
        "uq_leads_chat_email",
        "email_normalized",
        unique=True,
        sqlite_where=text("origin = 'chat'"),
        postgresql_where=text("origin = 'chat'"),
    ),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner_id", BigInteger),
    Column("owner_ref", Text),
    Column("creator_id", BigInteger),
    Column("is_organization", Boolean, nullable=False, server_default="0"),
    Column("contact_id", BigInteger, index=True),
    *_party_columns(),
    Column("customer_status", Text),
    Column("prospect_status", Text),
    *_sell_tail(),
)

deals = Table(
    "deals",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner_id", BigInteger),
    Column("owner_ref", Text),
    Column("creator_id", BigInteger),
    Column("name", Text),
    Column("value", Text),
    Column("currency", Text),
    Column("stage_id", BigInteger),
    Column("contact_id", BigInteger, index=True),
    Column("organization_id", BigInteger, index=True),
    Column("hot", Boolean),
    Column("tags", Text),
    Column("custom_fields", Text),
    _ts("created_at"),
    _ts("updated_at"),
    Column("extra", Text),
    Column("sell_hash", Text),
    Column("imported_run_id", Integer),
)

sell_notes = Table(
    "sell_notes",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("resource_type", Text),
    Column("resource_id", BigInteger),
    Column("creator_id", BigInteger),
    Column("content", Text),
    _ts("created_at"),
    _ts("updated_at"),
    Column("extra", Text),
    Column("sell_hash", Text),
    Column("imported_run_id", Integer),
)

lead_conversions = Table(
    "lead_conversions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("lead_id", BigInteger, index=True),
    Column("individual_id", BigInteger),
    Column("organization_id", BigInteger),
    Column("deal_id", BigInteger),
    _ts("created_at"),
    Column("extra", Text),
    Column("sell_hash", Text),
    Column("imported_run_id", Integer),
)

agents = Table(
    "agents",
    metadata,
    Column("agent_id", Text, primary_key=True),
    Column("email", Text),
    Column("display_name", Text),
    Column("enabled", Boolean),
    Column("department_ids", Text),
)

departments = Table(
    "departments",
    metadata,
    Column("department_id", Text, primary_key=True),
    Column("name", Text),
    Column("members", Text),
)

chats = Table(
    "chats",
    metadata,
    Column("chat_id", Text, primary_key=True),
    Column("version", Text, nullable=False),
    Column("kind", Text, nullable=False),
    _ts("started_at", nullable=False),
    _ts("ended_at"),
    _ts("updated_at"),
    Column("visitor_id", Text),
    Column("visitor_name", Text),
    Column("visitor_email", Text),
    Column("visitor_phone", Text),
    Column("visitor_notes", Text),
    Column("email_normalized", Text, index=True),
    Column("department_id", Text),
    Column("department_name", Text),
    Column("tags", Text),
    Column("rating", Text),
    Column("comment", Text),
    Column("missed", Boolean),
    Column("agent_ids", Text),
    Column("agent_names", Text),
    Column("country_code", Text),
    Column("message_count", Integer),
    Column("transcript", Text),
    Column("content_hash", Text),
    Column("deleted", Boolean),
    Column("source_file", Text),
    Column("position", Text),
    Column("run_id", Integer),  # the run that stored this version
    # what the stored rows of this chat were planned from (``etl.transform.plankey``)
    Column("plan_key", BigInteger),
)

activities = Table(
    "activities",
    metadata,
    Column("chat_id", Text, nullable=False),
    Column("record_type", Text, nullable=False),
    Column("record_id", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    _ts("started_at", nullable=False),
    _ts("ended_at"),
    Column("agent_names", Text),
    Column("agent_user_id", BigInteger),
    Column("visitor_name", Text),
    Column("record_name", Text),
    Column("department", Text),
    Column("tags", Text),
    Column("rating", Text),
    Column("message_count", Integer),
    Column("transcript", Text),
    Column("transcript_url", Text),
    Column("content_hash", Text, nullable=False),
    Column("chat_version", Text, nullable=False),
    PrimaryKeyConstraint("chat_id", "record_type", "record_id"),
    CheckConstraint(_record_type_check, name="record_type"),
    Index("ix_activities_record", "record_type", "record_id", "started_at"),
)

notes = Table(
    "notes",
    metadata,
    Column("chat_id", Text, nullable=False),
    Column("record_type", Text, nullable=False),
    Column("record_id", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("creator_id", BigInteger),
    Column("content", Text, nullable=False),
    _ts("created_at"),
    Column("created_run_id", Integer),
    PrimaryKeyConstraint("chat_id", "record_type", "record_id", "kind"),
    CheckConstraint(_record_type_check, name="record_type"),
    Index("ix_notes_record", "record_type", "record_id"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("chat_id", Text, nullable=False),
    Column("record_type", Text, nullable=False),
    Column("record_id", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("user_id", BigInteger),
    Column("message", Text),
    _ts("created_at"),
    Column("created_run_id", Integer),
    PrimaryKeyConstraint("chat_id", "record_type", "record_id", "kind"),
    CheckConstraint(_record_type_check, name="record_type"),
)

field_changes = Table(
    "field_changes",
    metadata,
    Column("record_type", Text, nullable=False),
    Column("record_id", BigInteger, nullable=False),
    Column("field", Text, nullable=False),
    Column("chat_id", Text, nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("run_id", Integer),
    _ts("changed_at"),
    PrimaryKeyConstraint("record_type", "record_id", "field", "chat_id"),
    Index("ix_field_changes_chat", "chat_id"),  # a run looks up the changes its chats made
)

pool_state = Table(
    "pool_state",
    metadata,
    Column("pool", Text, primary_key=True),
    Column("pointer", Integer, nullable=False, server_default="0"),
    Column("state", Text),
    Column("assigned", Integer, nullable=False, server_default="0"),
    Column("updated_run_id", Integer),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("mode", Text, nullable=False),
    Column("status", Text, nullable=False),
    _ts("started_at", nullable=False),
    _ts("finished_at"),
    Column("host", Text),
    Column("pid", Integer),
    Column("input_key", Text),
    Column("options", Text),
    Column("counters", Text),
    Column("report", Text),
    Column("error", Text),
)

run_outcomes = Table(
    "run_outcomes",
    metadata,
    Column("run_id", Integer, nullable=False),
    Column("chat_id", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("email_normalized", Text),
    Column("records", Text),
    Column("reason", Text),
    Column("match_count", Integer, nullable=False, server_default="0"),
    _ts("chat_started_at"),
    Column("department", Text),
    Column("agent", Text),
    PrimaryKeyConstraint("run_id", "chat_id"),
    CheckConstraint(
        "outcome IN ('matched', 'lead_created', 'matched_new_lead', 'lead_skipped', "
        "'no_email', 'invalid_email', 'rejected', 'removed')",
        name="outcome",
    ),
)

rejects = Table(
    "rejects",
    metadata,
    Column("run_id", Integer, nullable=False),
    Column("source_file", Text, nullable=False),
    Column("position", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", Text),
    Column("chat_id", Text),
    PrimaryKeyConstraint("run_id", "source_file", "position"),
)

source_files = Table(
    "source_files",
    metadata,
    Column("path", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("loaded_run_id", Integer),
    _ts("loaded_at"),
)

rematch_queue = Table(
    "rematch_queue",
    metadata,
    Column("email_normalized", Text, primary_key=True),
    Column("queued_run_id", Integer),
)

backfill_windows = Table(
    "backfill_windows",
    metadata,
    Column("run_id", Integer, nullable=False),
    _ts("window_start", nullable=False),
    _ts("window_end", nullable=False),
    Column("chats", Integer, nullable=False, server_default="0"),
    _ts("finished_at"),
    PrimaryKeyConstraint("run_id", "window_start"),
)

run_lock = Table(
    "run_lock",
    metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text),
    _ts("acquired_at"),
)

pull_cursors = Table(
    "pull_cursors",
    metadata,
    Column("name", Text, primary_key=True),  # e.g. chat.incremental, sell.leads
    Column("value", Text, nullable=False),  # JSON: where the next pull starts, what the last got
    _ts("updated_at", nullable=False),
)

# the state of each alert condition (SPEC 11): a message goes out when it changes, once
alert_state = Table(
    "alert_state",
    metadata,
    Column("condition", Text, primary_key=True),
    Column("firing", Boolean, nullable=False),
    Column("figure", Float),
    Column("threshold", Float),
    Column("run_id", Integer),  # the run it was evaluated after
    _ts("changed_at", nullable=False),
    Column("pending", Text),  # a message not delivered yet: sent again after the next run
)

# what Sell should see (SPEC 9): one row per store write, added in that write's transaction and
# unique by its dedupe key, so a rerun, a resume or a Dask task adds it once; sent by `push`
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "skipped")
sell_outbox = Table(
    "sell_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),  # lead | activity | note | notification | phone
    Column("record_type", Text, nullable=False),
    Column("record_id", BigInteger, nullable=False),  # a chat-created lead's: negative
    Column("chat_id", Text),
    Column("dedupe_key", Text, nullable=False, unique=True),
    Column("payload", Text),  # JSON: what the row needs besides the store's current rows
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("sell_id", BigInteger),
    Column("created_run_id", Integer),
    _ts("created_at", nullable=False),
    _ts("sent_at"),
    CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'skipped')", name="status"),
    Index("ix_sell_outbox_status_id", "status", "id"),
)

# an erasure request (SPEC 10, `chatsell forget`): the normalized email only as a keyed hash
# (HMAC-SHA256 with the store's ``erasure_salt``), so a later sync knows its chats and keeps
# nothing of them, and the store keeps no list of the people who asked
erasures = Table(
    "erasures",
    metadata,
    Column("email_hash", Text, primary_key=True),
    _ts("erased_at", nullable=False),  # chats started before it are the erased person's
)

# the store's own values (``erasure_salt``: random, made by the first erasure)
store_settings = Table(
    "store_settings",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)
