"""source change times on links and dead letters

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("erphub_links", "erphub_dead_letters"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in ("erphub_links", "erphub_dead_letters"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("source_updated_at")
