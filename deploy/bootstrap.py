"""Bootstrapping a deployment: Kafka topics, tenants, re-publishing the outboxes.

The ``idrflow`` CLI (``topics``, ``tenants create``, ``outbox republish``, ``relay``), the local
stack runner (:mod:`deploy.devstack`) and the docker-compose init jobs (through the CLI) all use
these, so they live here rather than in either caller: ``deploy.devstack`` must not import
``services.cli`` (which imports the runner for ``idrflow dev``). It sits in ``deploy/`` next to
:mod:`deploy.migrate` because it reaches into every service's tables, which ``shared/`` must not;
the service model modules are imported inside the functions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.db import get_engine
from shared.kafka import ensure_topics
from shared.kafka.outbox import republish
from shared.settings import get_settings
from shared.tenants import upsert_tenant

if TYPE_CHECKING:
    from sqlalchemy import Table


def outboxes() -> list[Table]:
    """Every service's outbox table, in the order the relay publishes them."""
    from services.dispute.models import outbox as dispute_outbox
    from services.intake.models import outbox as intake_outbox
    from services.negotiation.models import outbox as negotiation_outbox
    from services.notifier.models import outbox as notifier_outbox

    return [intake_outbox, dispute_outbox, negotiation_outbox, notifier_outbox]


async def ensure_topics_with(bootstrap: str) -> list[str]:
    """Create the topics and their dead-letter topics on the broker at ``bootstrap``."""
    settings = get_settings().model_copy(update={"kafka_bootstrap_servers": bootstrap})
    return await ensure_topics(settings)


async def seed_tenant(
    database_url: str, tenant_id: str, name: str, api_key: str, email: str | None, slack_webhook: str | None
) -> None:
    """Create or update a tenant, its API key and its alert subscriptions."""
    from sqlalchemy.dialects.postgresql import insert

    from services.notifier.models import subscriptions
    from shared.db import unit_of_work

    engine = get_engine(database_url)
    await upsert_tenant(tenant_id, name, api_key, engine)
    rows = [("email", email), ("slack", slack_webhook)]
    async with unit_of_work(engine) as session:
        for channel, target in rows:
            if target:
                await session.execute(
                    insert(subscriptions)
                    .values(tenant_id=tenant_id, channel=channel, target=target)
                    .on_conflict_do_nothing()
                )
    await engine.dispose()


async def republish_all(database_url: str, since: datetime | None = None) -> int:
    """Mark every outbox row created since ``since`` (default: all) for publishing again."""
    engine = get_engine(database_url)
    total = 0
    for table in outboxes():
        total += await republish(engine, table, since or datetime(1970, 1, 1, tzinfo=UTC))
    await engine.dispose()
    return total
