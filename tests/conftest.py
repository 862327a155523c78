"""Shared fixtures. Tests are marked by the folder they live in (unit, workflow, integration, e2e)."""

from __future__ import annotations

import pytest

TIERS = ("unit", "workflow", "integration", "e2e", "replay", "chaos")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for tier in TIERS:
            if f"/tests/{tier}/" in str(item.path):
                item.add_marker(getattr(pytest.mark, tier))


# -- the real stack: PostgreSQL, the Kafka-protocol broker, Temporal, SMTP and Slack stand-ins ----
import os  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from deploy.devstack import Ports, Stack  # noqa: E402


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Started once per session on free ports; this process's settings point at it."""
    ports = Ports.free()
    root = tmp_path_factory.mktemp("stack")
    s = Stack(root, ports=ports, quiet=os.environ.get("IDRFLOW_TEST_VERBOSE") != "1")
    saved = dict(os.environ)
    try:
        s.start_servers()
        s.api_key = s.prepare()  # type: ignore[attr-defined]
        os.environ.update(
            {
                "DATABASE_URL": s.database_url,
                "TEMPORAL_ADDRESS": s.temporal_address,
                "KAFKA_BOOTSTRAP_SERVERS": s.kafka,
                "IDRFLOW_SMTP_PORT": str(ports.smtp),
                "IDRFLOW_PAYLOAD_KEYS": s.payload_keys(),
            }
        )
        from shared.db import get_engine
        from shared.settings import get_settings

        get_settings.cache_clear()
        get_engine.cache_clear()
        yield s
    finally:
        s.stop()
        os.environ.clear()
        os.environ.update(saved)
