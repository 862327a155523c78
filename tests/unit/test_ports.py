"""Ports for a stack of its own (tests, benches, fuzzing): free, distinct, and outside the range the
kernel hands out to outgoing connections and to the Temporal dev server's own services."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from deploy.devstack import LOCAL_KAFKA_SESSION_TIMEOUT_MS, Ports, Stack
from deploy.servers import _ephemeral_range, free_port
from shared.settings import Settings

pytestmark = pytest.mark.unit


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 < p < low for p in ports)
    for port in ports[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_stack_gets_a_port_of_its_own_for_every_server() -> None:
    a, b = Ports.free(), Ports.free()
    mine = [p for p in vars(a).values() if p is not None]
    theirs = [p for p in vars(b).values() if p is not None]
    assert len(set(mine)) == len(mine) and not set(mine) & set(theirs)


def test_the_local_broker_gets_a_short_consumer_session_a_real_kafka_keeps_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local broker holds a stopped consumer's partitions until its session expires: the local
    stack shortens it; against a Kafka of the user's it is the setting's (a real cluster refuses
    sessions under 6 s); the user's own IDRFLOW_ value wins either way."""
    monkeypatch.delenv("IDRFLOW_KAFKA_SESSION_TIMEOUT_MS", raising=False)
    local = Stack(tmp_path, ports=Ports.free()).env()
    assert local["IDRFLOW_KAFKA_SESSION_TIMEOUT_MS"] == str(LOCAL_KAFKA_SESSION_TIMEOUT_MS)
    assert (
        Settings(
            _env_file=None, kafka_session_timeout_ms=LOCAL_KAFKA_SESSION_TIMEOUT_MS
        ).kafka_session_timeout_ms
        == 4000
    )
    real = Stack(tmp_path, ports=Ports.free(), external={"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}).env()
    assert "IDRFLOW_KAFKA_SESSION_TIMEOUT_MS" not in real
    assert Settings(_env_file=None).kafka_session_timeout_ms == 10_000
    monkeypatch.setenv("IDRFLOW_KAFKA_SESSION_TIMEOUT_MS", "7000")
    assert Stack(tmp_path, ports=Ports.free()).env()["IDRFLOW_KAFKA_SESSION_TIMEOUT_MS"] == "7000"
