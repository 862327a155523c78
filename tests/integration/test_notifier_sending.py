"""A delivery is recorded as `sending` before the channel is called (issue 10 item 3): one found
`sending` after its sender's claim expired (the notifier died between the channel's answer and its
record) is not sent a second time; it is marked `unconfirmed` and reported. The alert consumer
itself calls no channel: it records `pending` deliveries that the sender sends."""

from __future__ import annotations

import asyncio
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


class Gated(Counting):
    """Holds every send until released, counting how many are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most = 0
        self.release = asyncio.Event()

    async def send(self, target: str, message: AlertMessage, commit: Commit | None = None) -> str:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.wait()
            return await super().send(target, message, commit)
        finally:
            self.in_flight -= 1


async def test_a_burst_to_one_target_is_sent_a_few_at_a_time_and_leaves_room_for_others(
    stack: Stack,
) -> None:
    """A burst of alerts to one mailbox runs ``notifier_per_target_concurrency`` sends at once (not
    one, not the whole burst); another tenant's alert is claimed beside them."""
    burst, other = f"burst-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    await seed_tenant(stack.database_url, burst, "Burst Co", f"key-{burst}", "ops@burst.example", None)
    await seed_tenant(stack.database_url, other, "Other Co", f"key-{other}", "ops@other.example", None)
    settings = Settings().model_copy(
        update={"notifier_per_target_concurrency": 3, "notifier_send_concurrency": 8}
    )
    engine = get_engine()
    channel = Gated()
    handler = AlertHandler(settings, ["email"])
    sender = DeliverySender(engine, settings, {"email": channel}, tenants=[burst, other])
    async with unit_of_work(engine) as session:
        for days in range(10):
            env = approaching(days % 5).model_copy(update={"tenant_id": burst, "event_id": uuid.uuid4()})
            await handler(session, env)
        await handler(
            session, approaching(1).model_copy(update={"tenant_id": other, "event_id": uuid.uuid4()})
        )

    claimed = await sender.claim(8)
    targets = [c.target for c in claimed]
    assert targets.count("ops@burst.example") == 3  # the per-target bound, below the free slots
    assert targets.count("ops@other.example") == 1
    assert await sender.claim(8) == []  # the burst's target is full; nothing else is due

    stop = asyncio.Event()
    run = asyncio.create_task(sender.run(stop))
    try:
        for c in claimed:  # what was claimed above is sent with the rest
            task = asyncio.create_task(sender._send(c))
            sender._tasks.add(task)
            task.add_done_callback(sender._tasks.discard)
        await asyncio.sleep(0.5)
        assert channel.most == 4  # three for the burst's mailbox, one for the other tenant's
        channel.release.set()
        async with asyncio.timeout(30):
            while len(channel.sent) < 11:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(run, 20)
    assert sorted(channel.sent).count("ops@burst.example") == 10
    assert channel.most == 4
