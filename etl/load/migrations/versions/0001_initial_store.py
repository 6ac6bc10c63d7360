"""initial store

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "activities",
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("record_type", sa.Text(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent_names", sa.Text(), nullable=True),
        sa.Column("agent_user_id", sa.BigInteger(), nullable=True),
        sa.Column("visitor_name", sa.Text(), nullable=True),
        sa.Column("record_name", sa.Text(), nullable=True),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("rating", sa.Text(), nullable=True),
        sa.Column("message_count", sa.Integer(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("transcript_url", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("chat_version", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "record_type IN ('lead', 'contact', 'deal')", name=op.f("ck_activities_record_type")
        ),
        sa.PrimaryKeyConstraint("chat_id", "record_type", "record_id", name=op.f("pk_activities")),
    )
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.create_index(
            "ix_activities_record", ["record_type", "record_id", "started_at"], unique=False
        )

    op.create_table(
        "agents",
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("department_ids", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agents")),
    )
    op.create_table(
        "chats",
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("visitor_id", sa.Text(), nullable=True),
        sa.Column("visitor_name", sa.Text(), nullable=True),
        sa.Column("visitor_email", sa.Text(), nullable=True),
        sa.Column("visitor_phone", sa.Text(), nullable=True),
        sa.Column("visitor_notes", sa.Text(), nullable=True),
        sa.Column("email_normalized", sa.Text(), nullable=True),
        sa.Column("department_id", sa.Text(), nullable=True),
        sa.Column("department_name", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("rating", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("missed", sa.Boolean(), nullable=True),
        sa.Column("agent_ids", sa.Text(), nullable=True),
        sa.Column("agent_names", sa.Text(), nullable=True),
        sa.Column("country_code", sa.Text(), nullable=True),
        sa.Column("message_count", sa.Integer(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=True),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("position", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_chats")),
    )
    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_chats_email_normalized"), ["email_normalized"], unique=False
        )

    op.create_table(
        "contacts",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.Column("owner_ref", sa.Text(), nullable=True),
        sa.Column("creator_id", sa.BigInteger(), nullable=True),
        sa.Column("is_organization", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("organization_name", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_normalized", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("mobile", sa.Text(), nullable=True),
        sa.Column("customer_status", sa.Text(), nullable=True),
        sa.Column("prospect_status", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("custom_fields", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("sell_hash", sa.Text(), nullable=True),
        sa.Column("imported_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_contacts_email_normalized"), ["email_normalized"], unique=False
        )

    op.create_table(
        "deals",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.Column("owner_ref", sa.Text(), nullable=True),
        sa.Column("creator_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("stage_id", sa.BigInteger(), nullable=True),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("organization_id", sa.BigInteger(), nullable=True),
        sa.Column("hot", sa.Boolean(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("custom_fields", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("sell_hash", sa.Text(), nullable=True),
        sa.Column("imported_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
    )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deals_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_deals_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "departments",
        sa.Column("department_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("members", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("department_id", name=op.f("pk_departments")),
    )
    op.create_table(
        "field_changes",
        sa.Column("record_type", sa.Text(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint(
            "record_type", "record_id", "field", "chat_id", name=op.f("pk_field_changes")
        ),
    )
    op.create_table(
        "lead_conversions",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=True),
        sa.Column("individual_id", sa.BigInteger(), nullable=True),
        sa.Column("organization_id", sa.BigInteger(), nullable=True),
        sa.Column("deal_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("sell_hash", sa.Text(), nullable=True),
        sa.Column("imported_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_conversions")),
    )
    with op.batch_alter_table("lead_conversions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lead_conversions_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "leads",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.Column("owner_ref", sa.Text(), nullable=True),
        sa.Column("creator_id", sa.BigInteger(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("organization_name", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_normalized", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("mobile", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("custom_fields", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("sell_hash", sa.Text(), nullable=True),
        sa.Column("imported_run_id", sa.Integer(), nullable=True),
        sa.Column("origin", sa.Text(), server_default="sell", nullable=False),
        sa.Column("origin_chat_id", sa.Text(), nullable=True),
        sa.Column("created_run_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("origin IN ('sell', 'chat')", name=op.f("ck_leads_origin")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_leads_email_normalized"), ["email_normalized"], unique=False
        )
        batch_op.create_index(
            "uq_leads_chat_email",
            ["email_normalized"],
            unique=True,
            sqlite_where=sa.text("origin = 'chat'"),
            postgresql_where=sa.text("origin = 'chat'"),
        )

    op.create_table(
        "notes",
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("record_type", sa.Text(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("creator_id", sa.BigInteger(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_run_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "record_type IN ('lead', 'contact', 'deal')", name=op.f("ck_notes_record_type")
        ),
        sa.PrimaryKeyConstraint(
            "chat_id", "record_type", "record_id", "kind", name=op.f("pk_notes")
        ),
    )
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.create_index("ix_notes_record", ["record_type", "record_id"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("record_type", sa.Text(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_run_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "record_type IN ('lead', 'contact', 'deal')", name=op.f("ck_notifications_record_type")
        ),
        sa.PrimaryKeyConstraint(
            "chat_id", "record_type", "record_id", "kind", name=op.f("pk_notifications")
        ),
    )
    op.create_table(
        "pool_state",
        sa.Column("pool", sa.Text(), nullable=False),
        sa.Column("pointer", sa.Integer(), server_default="0", nullable=False),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("assigned", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("pool", name=op.f("pk_pool_state")),
    )
    op.create_table(
        "rejects",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=False),
        sa.Column("position", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("chat_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "source_file", "position", name=op.f("pk_rejects")),
    )
    op.create_table(
        "rematch_queue",
        sa.Column("email_normalized", sa.Text(), nullable=False),
        sa.Column("queued_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("email_normalized", name=op.f("pk_rematch_queue")),
    )
    op.create_table(
        "run_lock",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_run_lock")),
    )
    op.create_table(
        "run_outcomes",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("email_normalized", sa.Text(), nullable=True),
        sa.Column("records", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("match_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("chat_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("agent", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('matched', 'lead_created', 'matched_new_lead', 'lead_skipped', 'no_email', 'invalid_email', 'rejected')",
            name=op.f("ck_run_outcomes_outcome"),
        ),
        sa.PrimaryKeyConstraint("run_id", "chat_id", name=op.f("pk_run_outcomes")),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("host", sa.Text(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("input_key", sa.Text(), nullable=True),
        sa.Column("options", sa.Text(), nullable=True),
        sa.Column("counters", sa.Text(), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    op.create_table(
        "sell_notes",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=True),
        sa.Column("resource_id", sa.BigInteger(), nullable=True),
        sa.Column("creator_id", sa.BigInteger(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("sell_hash", sa.Text(), nullable=True),
        sa.Column("imported_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sell_notes")),
    )
    op.create_table(
        "source_files",
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("loaded_run_id", sa.Integer(), nullable=True),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_source_files")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_normalized", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=True),
        sa.Column("team_name", sa.Text(), nullable=True),
        sa.Column("group_id", sa.BigInteger(), nullable=True),
        sa.Column("group_name", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("sell_hash", sa.Text(), nullable=True),
        sa.Column("imported_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_users_email_normalized"), ["email_normalized"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_email_normalized"))

    op.drop_table("users")
    op.drop_table("source_files")
    op.drop_table("sell_notes")
    op.drop_table("runs")
    op.drop_table("run_outcomes")
    op.drop_table("run_lock")
    op.drop_table("rematch_queue")
    op.drop_table("rejects")
    op.drop_table("pool_state")
    op.drop_table("notifications")
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_index("ix_notes_record")

    op.drop_table("notes")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_leads_chat_email",
            sqlite_where=sa.text("origin = 'chat'"),
            postgresql_where=sa.text("origin = 'chat'"),
        )
        batch_op.drop_index(batch_op.f("ix_leads_email_normalized"))

    op.drop_table("leads")
    with op.batch_alter_table("lead_conversions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_conversions_lead_id"))

    op.drop_table("lead_conversions")
    op.drop_table("field_changes")
    op.drop_table("departments")
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deals_organization_id"))
        batch_op.drop_index(batch_op.f("ix_deals_contact_id"))

    op.drop_table("deals")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_email_normalized"))
        batch_op.drop_index(batch_op.f("ix_contacts_contact_id"))

    op.drop_table("contacts")
    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chats_email_normalized"))

    op.drop_table("chats")
    op.drop_table("agents")
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("ix_activities_record")

    op.drop_table("activities")
