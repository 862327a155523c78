"""delivery rate_limited_since: when a channel first answered 429 for this delivery

Revision ID: 5b7e0c1d9a3f
Revises: f61cc7b315ca
Create Date: 2026-12-03 17:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7e0c1d9a3f"
down_revision: str | None = "f61cc7b315ca"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "deliveries",
        sa.Column("rate_limited_since", sa.DateTime(timezone=True), nullable=True),
        schema="notifier",
    )


def downgrade() -> None:
    op.drop_column("deliveries", "rate_limited_since", schema="notifier")
