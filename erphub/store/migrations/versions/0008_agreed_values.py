"""agreed values of two-way fields, per record and field

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erphub_agreed_values",
        sa.Column("pair", sa.String(255), primary_key=True),
        sa.Column("record_id", sa.String(255), primary_key=True),
        sa.Column("field", sa.String(255), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("agreed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erphub_agreed_values")
