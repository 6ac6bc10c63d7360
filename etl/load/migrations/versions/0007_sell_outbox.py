"""sell outbox, leads.sell_id

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("sell_id", sa.BigInteger(), nullable=True))
    op.create_table(
        "sell_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("record_type", sa.Text(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sell_id", sa.BigInteger(), nullable=True),
        sa.Column("created_run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'skipped')",
            name=op.f("ck_sell_outbox_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sell_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_sell_outbox_dedupe_key")),
    )
    op.create_index("ix_sell_outbox_status_id", "sell_outbox", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_sell_outbox_status_id", table_name="sell_outbox")
    op.drop_table("sell_outbox")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("sell_id")
