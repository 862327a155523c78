"""Ports for a stack of its own (tests, benches, fuzzing): free, distinct, and outside the range the
kernel hands out to outgoing connections and to the Temporal dev server's own services."""

from __future__ import annotations

import socket

import pytest

from deploy.devstack import Ports
from deploy.servers import _ephemeral_range, free_port

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
