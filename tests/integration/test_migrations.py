from __future__ import annotations

from alembic import command

from deploy.devstack import Stack
from deploy.migrate import alembic_config


def test_the_models_and_the_migrations_agree(stack: Stack) -> None:
    """Fails when a table or column changed without a migration (autogenerate finds a difference)."""
    command.check(alembic_config(stack.database_url))
