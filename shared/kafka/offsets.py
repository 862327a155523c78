"""What a consumer watches besides its messages: its lag (a metric). (A broker that forgets its
offsets, the local in-memory one restarted, is the runner's to handle: ``Stack.restart_server``.)"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.metrics import CONSUMER_LAG

log = logging.getLogger("shared.kafka.consumer")


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
