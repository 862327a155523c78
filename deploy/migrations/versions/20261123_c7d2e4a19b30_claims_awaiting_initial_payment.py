"""claims awaiting their initial payment: initial_payment_received_on may be empty

Revision ID: c7d2e4a19b30
Revises: f5f90e77b03f
Create Date: 2026-11-23 14:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c7d2e4a19b30"
down_revision: str | None = "f5f90e77b03f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "claims", "initial_payment_received_on", existing_type=sa.Date(), nullable=True, schema="intake"
    )


def downgrade() -> None:
    op.alter_column(
        "claims", "initial_payment_received_on", existing_type=sa.Date(), nullable=False, schema="intake"
    )
