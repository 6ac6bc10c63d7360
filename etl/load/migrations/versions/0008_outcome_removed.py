"""run_outcomes.outcome may be 'removed' (a chat deleted at source, SPEC 10)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BEFORE = (
    "outcome IN ('matched', 'lead_created', 'matched_new_lead', 'lead_skipped', "
    "'no_email', 'invalid_email', 'rejected')"
)
_AFTER = (
    "outcome IN ('matched', 'lead_created', 'matched_new_lead', 'lead_skipped', "
    "'no_email', 'invalid_email', 'rejected', 'removed')"
)


def _check(condition: str) -> None:
    with op.batch_alter_table("run_outcomes") as batch:
        batch.drop_constraint(op.f("ck_run_outcomes_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_run_outcomes_outcome"), condition)


def upgrade() -> None:
    _check(_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM run_outcomes WHERE outcome = 'removed'")
    _check(_BEFORE)
