"""Kafka plumbing: producer, topics, the outbox relay and the consumer loop with inbox and DLQ."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


def make_producer(settings: Settings | None = None) -> AIOKafkaProducer:
    s = settings or get_settings()
    return AIOKafkaProducer(
        bootstrap_servers=s.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=s.kafka_enable_idempotence,
        request_timeout_ms=15000,
    )


def all_topics(settings: Settings | None = None) -> list[str]:
    s = settings or get_settings()
    base = [s.topic_claims, s.topic_lifecycle, s.topic_alerts, s.topic_notices]
    return base + [f"{t}.dlq" for t in base]


def _new_topic(name: str, s: Settings) -> NewTopic:
    """A topic with the configured replication factor and ``min.insync.replicas`` (both 1 locally)."""
    return NewTopic(
        name,
        1 if name.endswith(".dlq") else s.kafka_topic_partitions,
        s.kafka_replication_factor,
        topic_configs={"min.insync.replicas": str(s.kafka_min_insync_replicas)},
    )


async def ensure_topics(settings: Settings | None = None) -> list[str]:
    """Create the topics (and their ``.dlq``) that do not exist yet; return the ones created."""
    s = settings or get_settings()
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in all_topics(s) if t not in existing]
        if missing:
            try:
                await admin.create_topics([_new_topic(t, s) for t in missing])
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        await admin.close()


async def broker_ready(settings: Settings | None = None) -> bool:
    s = settings or get_settings()
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), 5)
        await asyncio.wait_for(admin.list_topics(), 5)
        return True
    except Exception:
        return False
    finally:
        await admin.close()
