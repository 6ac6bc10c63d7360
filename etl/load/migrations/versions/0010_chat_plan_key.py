"""chats.plan_key: what a chat's stored rows were planned from (``etl.transform.plankey``)

A chat read again whose key is the stored one is not planned into rows again (a ``--full`` run
over unchanged exports). Stores from before hold no key: each chat is planned once more, as
before, and keeps its key from then on.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chats", sa.Column("plan_key", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("plan_key")
