"""the hub-wide token buckets of `rate_limit: {shared: true}` systems

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

TABLE = "erphub_rate_buckets"


def upgrade() -> None:
    # Read and written by erphub.connectors.shared_limit in raw SQL (connectors sit below the store);
    # times are the database server's epoch seconds, so every machine of a hub shares one clock.
    if TABLE in sa.inspect(op.get_bind()).get_table_names():
        return  # made by shared_limit itself before this migration, with these columns: keep its rows
    op.create_table(
        TABLE,
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("stamp", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
