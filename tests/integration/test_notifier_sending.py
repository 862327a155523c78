"""A delivery is recorded as `sending` before the channel is called (issue 10 item 3): one found
`sending` after its sender's claim expired (the notifier died between the channel's answer and its
record) is not sent a second time; it is marked `unconfirmed` and reported. The alert consumer
itself calls no channel: it records `pending` deliveries that the sender sends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from deploy.bootstrap import seed_tenant
from deploy.devstack import Stack
from services.notifier.channels import Commit
from services.notifier.consumer import AlertHandler
from services.notifier.models import deliveries
from services.notifier.sender import DeliverySender
from services.notifier.service import AlertMessage
from shared.db import get_engine, unit_of_work
from shared.settings import Settings
from tests.unit.test_notifier_render import approaching


class Counting:
    name = "email"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, target: str, message: AlertMessage, commit: Commit | None = None) -> str:
        if commit is not None:
            await commit()
        self.sent.append(target)
        return f"<{uuid.uuid4()}@test>"


async def test_an_interrupted_send_is_not_repeated(stack: Stack) -> None:
    tenant = f"sending-{uuid.uuid4().hex[:6]}"
    await seed_tenant(stack.database_url, tenant, "Sending Co", f"key-{tenant}", "ops@sending.example", None)
    engine = get_engine()
    channel = Counting()
    handler = AlertHandler(Settings(), ["email"])
    sender = DeliverySender(engine, Settings(), {"email": channel}, tenants=[tenant])
    env = approaching(2).model_copy(update={"tenant_id": tenant, "event_id": uuid.uuid4()})

    async with unit_of_work(engine) as session:
        await handler(session, env)
    assert channel.sent == []  # the consumer only records the delivery
    assert await sender.run_once() == 1
    assert channel.sent == ["ops@sending.example"]
    async with unit_of_work(engine) as session:  # redelivered: already recorded, nothing more
        await handler(session, env)
    assert await sender.run_once() == 0
    assert len(channel.sent) == 1

    # a delivery left 'sending' by a process that died mid-send, and one a live sibling is sending
    crashed = approaching(1).model_copy(update={"tenant_id": tenant, "event_id": uuid.uuid4()})
    busy = approaching(0).model_copy(update={"tenant_id": tenant, "event_id": uuid.uuid4()})
    now = datetime.now(UTC)
    for alert, claim_ends in ((crashed, now - timedelta(seconds=1)), (busy, now + timedelta(minutes=5))):
        async with unit_of_work(engine) as session:
            await handler(session, alert)
            await session.execute(
                update(deliveries)
                .where(deliveries.c.event_id == alert.event_id)
                .values(status="sending", attempts=1, next_attempt_at=claim_ends)
            )
    restarted = DeliverySender(engine, Settings(), {"email": channel}, tenants=[tenant])
    assert await restarted.run_once() == 0
    assert len(channel.sent) == 1  # neither is sent again
    async with engine.connect() as conn:
        rows = {
            r.event_id: r
            for r in await conn.execute(
                select(deliveries.c.event_id, deliveries.c.status, deliveries.c.detail).where(
                    deliveries.c.event_id.in_([crashed.event_id, busy.event_id])
                )
            )
        }
    assert rows[crashed.event_id].status == "unconfirmed"
    assert "not sent again" in rows[crashed.event_id].detail
    assert rows[busy.event_id].status == "sending"  # its sender may still answer

    # a delivery claimed by a process that died before anything reached the channel (connecting,
    # the SMTP envelope): due again when its claim expires, and sent once
    early = approaching(3).model_copy(update={"tenant_id": tenant, "event_id": uuid.uuid4()})
    async with unit_of_work(engine) as session:
        await handler(session, early)
        await session.execute(
            update(deliveries)
            .where(deliveries.c.event_id == early.event_id)
            .values(status="claimed", attempts=1, next_attempt_at=now - timedelta(seconds=1))
        )
    assert await restarted.run_once() == 1
    assert len(channel.sent) == 2
    async with engine.connect() as conn:
        status = (
            await conn.execute(select(deliveries.c.status).where(deliveries.c.event_id == early.event_id))
        ).scalar_one()
    assert status == "sent"
