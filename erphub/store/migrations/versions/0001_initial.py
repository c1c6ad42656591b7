"""initial store: cursors, links, dead letters, runs

Revision ID: 0001
Revises:
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
        "erphub_cursors",
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record_id", sa.String(length=255), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pipeline"),
    )
    op.create_table(
        "erphub_dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("source_payload", sa.JSON(), nullable=False),
        sa.Column("mapped_payload", sa.JSON(), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("error_class", sa.String(length=128), nullable=False),
        sa.Column("error_code", sa.String(length=128), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("erphub_dead_letters", schema=None) as batch_op:
        batch_op.create_index("ix_dead_letters_pipeline_status", ["pipeline", "status"], unique=False)
        batch_op.create_index("ix_dead_letters_source", ["pipeline", "source_id"], unique=False)

    op.create_table(
        "erphub_links",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("source_system", sa.String(length=128), nullable=False),
        sa.Column("source_entity", sa.String(length=128), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("target_system", sa.String(length=128), nullable=False),
        sa.Column("target_entity", sa.String(length=128), nullable=False),
        sa.Column("target_id", sa.String(length=255), nullable=True),
        sa.Column("match_key", sa.String(length=255), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=True),
        sa.Column("written_payload", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pipeline", "source_id", name="uq_links_pipeline_source"),
    )
    with op.batch_alter_table("erphub_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_links_target", ["target_system", "target_entity", "target_id"], unique=False
        )

    op.create_table(
        "erphub_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cursor_before", sa.String(length=300), nullable=True),
        sa.Column("cursor_after", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("erphub_runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_pipeline_started", ["pipeline", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("erphub_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_pipeline_started")

    op.drop_table("erphub_runs")
    with op.batch_alter_table("erphub_links", schema=None) as batch_op:
        batch_op.drop_index("ix_links_target")

    op.drop_table("erphub_links")
    with op.batch_alter_table("erphub_dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_dead_letters_source")
        batch_op.drop_index("ix_dead_letters_pipeline_status")

    op.drop_table("erphub_dead_letters")
    op.drop_table("erphub_cursors")
