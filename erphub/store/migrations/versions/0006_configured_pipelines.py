"""when the store first saw each scheduled pipeline (ErphubSyncStale for a pipeline that never succeeded)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erphub_configured_pipelines",
        sa.Column("pipeline", sa.String(128), primary_key=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erphub_configured_pipelines")
