"""two-way conflicts

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erphub_conflicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("target_id", sa.String(length=255), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("source_value", sa.JSON(), nullable=True),
        sa.Column("target_value", sa.JSON(), nullable=True),
        sa.Column("base_value", sa.JSON(), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("winner", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("erphub_conflicts", schema=None) as batch_op:
        batch_op.create_index("ix_conflicts_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("erphub_conflicts", schema=None) as batch_op:
        batch_op.drop_index("ix_conflicts_status")
    op.drop_table("erphub_conflicts")
