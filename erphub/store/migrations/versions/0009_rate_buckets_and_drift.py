"""the hub-wide token buckets of `rate_limit: {shared: true}` systems; the drift each pipeline's last
reconcile left

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BUCKETS = "erphub_rate_buckets"


def upgrade() -> None:
    # Read and written by erphub.connectors.shared_limit in raw SQL (connectors sit below the store);
    # times are the database server's epoch seconds, so every machine of a hub shares one clock. A hub
    # that used shared limits before 0009 has the table already (shared_limit made it, same columns).
    if BUCKETS not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            BUCKETS,
            sa.Column("name", sa.String(128), primary_key=True),
            sa.Column("tokens", sa.Double(), nullable=False),
            sa.Column("stamp", sa.Double(), nullable=False),
        )
    # erphub_drift_records at scrape time: a gauge in the metrics folder is gone when `erphub serve` restarts.
    op.create_table(
        "erphub_drift",
        sa.Column("pipeline", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erphub_drift")
    op.drop_table(BUCKETS)
