"""The outbox: write an event with the domain rows; the relay publishes it afterwards.

The relay claims unpublished rows with ``FOR UPDATE SKIP LOCKED`` (so several relays may run),
publishes each and marks it published in the same transaction. A crash between publish and commit
re-publishes the row; consumers de-duplicate by event id (inbox), so delivery is effectively-once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.db import unit_of_work
from shared.events import Envelope, topic_for

log = logging.getLogger(__name__)


async def add_to_outbox(session: AsyncSession, outbox: Table, envelope: Envelope) -> bool:
    """Stage an event in the caller's transaction. Returns False when that event id is already there."""
    stmt = (
        insert(outbox)
        .values(
            event_id=envelope.event_id,
            topic=topic_for(envelope.event_type),
            message_key=f"{envelope.tenant_id}:{envelope.claim_id}",
            event_type=envelope.event_type,
            tenant_id=envelope.tenant_id,
            envelope=envelope.model_dump(mode="json"),
        )
        .on_conflict_do_nothing(index_elements=[outbox.c.event_id])
    )
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))


async def relay_once(engine: AsyncEngine, outbox: Table, producer: AIOKafkaProducer, batch: int) -> int:
    """Publish up to ``batch`` unpublished rows of one outbox; return how many were published."""
    async with unit_of_work(engine) as session:
        rows = (
            await session.execute(
                select(outbox.c.id, outbox.c.topic, outbox.c.message_key, outbox.c.envelope)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not rows:
            return 0
        futures = []
        for row in rows:
            value = Envelope.model_validate(row.envelope).to_bytes()
            futures.append(await producer.send(row.topic, value=value, key=row.message_key.encode()))
        await asyncio.gather(*futures)
        await session.execute(
            update(outbox).where(outbox.c.id.in_([r.id for r in rows])).values(published_at=datetime.now(UTC))
        )
        return len(rows)


async def republish(engine: AsyncEngine, outbox: Table, since: datetime) -> int:
    """Mark rows created since ``since`` unpublished again (after a broker lost its data)."""
    async with unit_of_work(engine) as session:
        result = await session.execute(
            update(outbox).where(outbox.c.created_at >= since).values(published_at=None)
        )
        return int(getattr(result, "rowcount", 0))


async def run_relay(
    engine: AsyncEngine,
    outboxes: list[Table],
    producer: AIOKafkaProducer,
    *,
    poll_seconds: float,
    batch: int,
    stop: asyncio.Event,
) -> None:
    """Drain every outbox until ``stop`` is set; failures are logged and retried with backoff."""
    backoff = poll_seconds
    while not stop.is_set():
        try:
            published = 0
            for outbox in outboxes:
                published += await relay_once(engine, outbox, producer, batch)
            backoff = poll_seconds
            if published:
                log.info("relay published %d event(s)", published)
                continue
        except Exception as exc:
            log.warning("relay error, retrying in %.1fs: %s", backoff, exc)
            backoff = min(backoff * 2, 10.0)
        try:
            await asyncio.wait_for(stop.wait(), timeout=backoff)
        except TimeoutError:
            pass
