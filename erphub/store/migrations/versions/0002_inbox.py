"""webhook inbox

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erphub_inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("deliver_id", sa.String(length=255), nullable=False),
        sa.Column("nonce", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pipelines", sa.JSON(), nullable=False),
        sa.Column("remaining", sa.JSON(), nullable=False),
        sa.Column("op", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=255), nullable=False),
        sa.Column("record_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "deliver_id", name="uq_inbox_source_deliver"),
    )
    with op.batch_alter_table("erphub_inbox", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_source_nonce", ["source", "nonce", "received_at"], unique=False)
        batch_op.create_index("ix_inbox_status_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_inbox_source_record", ["source", "record_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("erphub_inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_source_record")
        batch_op.drop_index("ix_inbox_status_due")
        batch_op.drop_index("ix_inbox_source_nonce")
    op.drop_table("erphub_inbox")
