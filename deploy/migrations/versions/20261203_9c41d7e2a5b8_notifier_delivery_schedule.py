"""notifier delivery schedule: the deliveries row is the durable retry schedule

Revision ID: 9c41d7e2a5b8
Revises: 4830a9ff86fa
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9c41d7e2a5b8"
down_revision: str | None = "4830a9ff86fa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "deliveries",
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        schema="notifier",
    )
    op.add_column(
        "deliveries",
        sa.Column("envelope", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="notifier",
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        unique=False,
        schema="notifier",
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_deliveries_due",
        table_name="deliveries",
        schema="notifier",
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.drop_column("deliveries", "envelope", schema="notifier")
    op.drop_column("deliveries", "next_attempt_at", schema="notifier")
