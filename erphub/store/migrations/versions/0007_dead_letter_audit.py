"""who closed a dead letter, when and why: the audit of dead-letter decisions

Revision ID: 0007
Revises: 0006

It only adds a table; `migrate` upgrades every head, so a migration another branch adds beside it
still applies.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erphub_dead_letter_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dead_letter_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("operator", sa.String(255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_dead_letter_audit_letter", "erphub_dead_letter_audit", ["dead_letter_id"])


def downgrade() -> None:
    op.drop_index("ix_dead_letter_audit_letter", table_name="erphub_dead_letter_audit")
    op.drop_table("erphub_dead_letter_audit")
