"""What a consumer watches besides its messages: its lag (a metric) and a broker that forgot its
offsets (the local in-memory broker, restarted)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.metrics import CONSUMER_LAG

log = logging.getLogger("shared.kafka.consumer")


class Amnesia:
    """A broker that lost its state (the local in-memory broker, restarted) forgets this group's
    offsets while this consumer's position stays where it was, so the re-published log would be
    skipped up to it. Every ``every`` seconds the broker's committed offsets are compared with the
    ones this consumer committed; an offset the broker no longer has (or has lower) sends the
    partition back to its beginning. The inbox makes every event already applied a no-op."""

    def __init__(self, group_id: str, every: float = 5.0) -> None:
        self.group_id = group_id
        self.every = every
        self.next_at = 0.0
        self.committed: dict[TopicPartition, int] = {}

    async def check(self, consumer: AIOKafkaConsumer, now: float) -> None:
        if now < self.next_at or not self.committed:
            return
        self.next_at = now + self.every
        try:
            async with asyncio.timeout(5):
                for tp in list(consumer.assignment()):
                    ours = self.committed.get(tp)
                    if ours is None:
                        continue
                    broker = await consumer.committed(tp)
                    if broker is None or broker < ours:
                        log.warning(
                            "%s: the broker lost the offsets of %s[%d] (committed %s, ours %d); reading it "
                            "again from the beginning (applied events are skipped by the inbox)",
                            self.group_id,
                            tp.topic,
                            tp.partition,
                            broker,
                            ours,
                        )
                        del self.committed[tp]
                        await consumer.seek_to_beginning(tp)
        except Exception as exc:  # the broker is busy or away: the next check tries again
            log.debug("%s: offsets not checked: %s", self.group_id, exc)


class Lag:
    """``idrflow_consumer_lag`` per assigned partition: the end offset minus the committed offset
    (the beginning when nothing was committed), refreshed every ``every`` seconds."""

    def __init__(self, group_id: str, every: float = 5.0) -> None:
        self.group_id = group_id
        self.every = every
        self.next_at = 0.0
        self.reported: set[TopicPartition] = set()

    async def refresh(self, consumer: AIOKafkaConsumer, now: float) -> None:
        if now < self.next_at:
            return
        self.next_at = now + self.every
        parts = set(consumer.assignment())
        for tp in self.reported - parts:
            with suppress(KeyError):
                CONSUMER_LAG.remove(self.group_id, tp.topic, str(tp.partition))
        self.reported = parts
        if not parts:
            return
        try:
            async with asyncio.timeout(5):
                ends = await consumer.end_offsets(list(parts))
                starts = await consumer.beginning_offsets(list(parts))
                for tp in parts:
                    committed = await consumer.committed(tp)
                    base = committed if committed is not None else starts.get(tp, 0)
                    lag = max(0, ends.get(tp, 0) - base)
                    CONSUMER_LAG.labels(self.group_id, tp.topic, str(tp.partition)).set(lag)
        except Exception as exc:  # the broker is busy or away: the next refresh tries again
            log.debug("%s: consumer lag not refreshed: %s", self.group_id, exc)
