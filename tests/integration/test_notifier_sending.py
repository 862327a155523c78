"""A delivery is recorded as `sending` before the channel is called (issue 10 item 3): one found
`sending` when the alert comes again (the notifier died between the channel's answer and its
record) is not sent a second time; it is marked `unconfirmed` and reported."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from deploy.bootstrap import seed_tenant
from deploy.devstack import Stack
from services.notifier.consumer import AlertHandler
from services.notifier.models import deliveries
from services.notifier.service import AlertMessage
from shared.db import get_engine, unit_of_work
from shared.settings import Settings
from tests.unit.test_notifier_render import approaching


class Counting:
    name = "email"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, target: str, message: AlertMessage) -> str:
        self.sent.append(target)
        return f"<{uuid.uuid4()}@test>"


async def test_an_interrupted_send_is_not_repeated(stack: Stack) -> None:
    tenant = f"sending-{uuid.uuid4().hex[:6]}"
    await seed_tenant(stack.database_url, tenant, "Sending Co", f"key-{tenant}", "ops@sending.example", None)
    engine = get_engine()
    channel = Counting()
    handler = AlertHandler(engine, Settings(), {"email": channel})
    env = approaching(2).model_copy(update={"tenant_id": tenant, "event_id": uuid.uuid4()})

    async with unit_of_work(engine) as session:
        await handler(session, env)
    assert channel.sent == ["ops@sending.example"]
    async with unit_of_work(engine) as session:  # redelivered: already sent, nothing more
        await handler(session, env)
    assert len(channel.sent) == 1

    # the same alert's delivery left 'sending' by a process that died mid-send
    crashed = approaching(1).model_copy(update={"tenant_id": tenant, "event_id": uuid.uuid4()})
    async with unit_of_work(engine) as session:
        await handler(session, crashed)
        await session.execute(
            update(deliveries).where(deliveries.c.event_id == crashed.event_id).values(status="sending")
        )
    async with unit_of_work(engine) as session:
        await handler(session, crashed)
    assert len(channel.sent) == 2  # not a third send
    async with engine.connect() as conn:
        status, detail = (
            await conn.execute(
                select(deliveries.c.status, deliveries.c.detail).where(
                    deliveries.c.event_id == crashed.event_id
                )
            )
        ).one()
    assert status == "unconfirmed" and "not sent again" in detail
