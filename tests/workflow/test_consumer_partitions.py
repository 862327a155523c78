"""The dispute consumer's loop (shared/kafka/consumer.py) handles a poll's partitions concurrently, each
partition's messages in order (one claim's events stay in order), commits once per partition, and a
retry pauses only its own partition. Against a fake broker: the Kafka plumbing itself is covered by
tests/integration (test_kafka_plumbing, test_dead_letters)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from shared.kafka import consumer as loop_module
from shared.settings import Settings

TOPIC = "idr.claims.v1"


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    value: bytes = b""
    headers: tuple[Any, ...] = ()


@dataclass
class FakeConsumer:
    batches: list[dict[TopicPartition, list[Msg]]]
    halt: asyncio.Event
    commits: list[tuple[int, int]] = field(default_factory=list)
    seeks: list[tuple[int, int]] = field(default_factory=list)
    paused_: set[TopicPartition] = field(default_factory=set)

    def __init__(self, *_: Any, **__: Any) -> None:
        self.commits, self.seeks, self.paused_ = [], [], set()

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, p) for p in range(3)}

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_)

    def pause(self, tp: TopicPartition) -> None:
        self.paused_.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        self.paused_.discard(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp.partition, offset))

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Msg]]:
        if not self.batches:
            self.halt.set()
            return {}
        return self.batches.pop(0)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            self.commits.append((tp.partition, offset))


class Nothing:
    def __init__(self, *_: Any, **__: Any) -> None:
        self.committed: dict[TopicPartition, int] = {}

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def refresh(self, *_: Any) -> None: ...
    async def check(self, *_: Any) -> None: ...


async def run(
    monkeypatch: pytest.MonkeyPatch, concurrency: bool, retry_at: tuple[int, int] | None = None
) -> tuple[FakeConsumer, list[tuple[str, int, int, float]]]:
    stop = asyncio.Event()
    fake = FakeConsumer()
    fake.halt = stop
    fake.batches = [{TopicPartition(TOPIC, p): [Msg(TOPIC, p, o) for o in range(4)] for p in range(3)}]
    trace: list[tuple[str, int, int, float]] = []
    clock = asyncio.get_running_loop().time

    async def process(msg: Msg, **kwargs: Any) -> str:
        trace.append(("start", msg.partition, msg.offset, clock()))
        await asyncio.sleep(0.02)
        trace.append(("end", msg.partition, msg.offset, clock()))
        return "retry" if (msg.partition, msg.offset) == retry_at else "applied"

    monkeypatch.setattr(loop_module, "AIOKafkaConsumer", lambda *a, **k: fake)
    monkeypatch.setattr(loop_module, "make_producer", lambda settings: Nothing())
    monkeypatch.setattr(loop_module, "Lag", Nothing)
    monkeypatch.setattr(loop_module, "process_message", process)
    await loop_module.run_consumer(
        topic=TOPIC,
        group_id="dispute-claims",
        inbox=SimpleNamespace(schema=None),  # type: ignore[arg-type]
        handler=None,  # type: ignore[arg-type]
        engine=None,  # type: ignore[arg-type]
        settings=Settings(consumer_partition_concurrency=concurrency),
        stop=stop,
        dead_letters=None,
    )
    return fake, trace


def in_order(trace: list[tuple[str, int, int, float]]) -> None:
    for p in range(3):
        starts = [o for kind, part, o, _ in trace if kind == "start" and part == p]
        assert starts == sorted(starts), f"partition {p} out of order: {starts}"


async def test_partitions_run_concurrently_in_order_with_one_commit_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, trace = await run(monkeypatch, concurrency=True)
    in_order(trace)
    # the three partitions overlap: the second message of each starts before any partition ends
    first_ends = min(t for kind, _, o, t in trace if kind == "end" and o == 3)
    assert all(t < first_ends for kind, _, o, t in trace if kind == "start" and o == 0)
    assert sorted(fake.commits) == [(0, 4), (1, 4), (2, 4)]


async def test_off_it_is_one_message_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, trace = await run(monkeypatch, concurrency=False)
    kinds = [kind for kind, *_ in trace]
    assert kinds == ["start", "end"] * 12  # never two at once
    in_order(trace)
    assert fake.commits == [(0, 4), (1, 4), (2, 4)]


async def test_a_retry_pauses_its_partition_only_and_keeps_what_was_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, trace = await run(monkeypatch, concurrency=True, retry_at=(1, 2))
    in_order(trace)
    assert fake.seeks == [(1, 2)] and TopicPartition(TOPIC, 1) in fake.paused_
    assert not [o for kind, p, o, _ in trace if p == 1 and o == 3]  # nothing after the retry
    assert sorted(fake.commits) == [(0, 4), (1, 2), (2, 4)]  # offsets 0-1 of partition 1 are done
