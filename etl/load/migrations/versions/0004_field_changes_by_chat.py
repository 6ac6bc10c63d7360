"""field changes by chat

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("field_changes", schema=None) as batch_op:
        batch_op.create_index("ix_field_changes_chat", ["chat_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("field_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_field_changes_chat")
