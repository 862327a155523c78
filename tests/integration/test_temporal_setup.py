"""The namespace's workflow retention: the local stack sets it, ``set_retention`` changes it, and
DescribeNamespace reports it (a real Temporal dev server, whose own default is one day)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from deploy.devstack import Stack
from shared.settings import Settings
from shared.temporal import get_retention, set_retention


async def test_prepare_sets_the_configured_retention_and_set_retention_changes_it(stack: Stack) -> None:
    client = await Client.connect(stack.temporal_address, namespace=stack.temporal_namespace)
    configured = Settings().temporal_retention_days
    assert configured == 30  # the default; the tests do not set IDRFLOW_TEMPORAL_RETENTION_DAYS
    assert await get_retention(client, stack.temporal_namespace) == timedelta(days=configured)
    try:
        await set_retention(client, stack.temporal_namespace, 45)
        assert await get_retention(client, stack.temporal_namespace) == timedelta(days=45)
    finally:
        await set_retention(client, stack.temporal_namespace, configured)
    assert await get_retention(client, stack.temporal_namespace) == timedelta(days=configured)


async def test_temporal_setup_command_sets_retention(stack: Stack) -> None:
    import os
    import subprocess
    import sys

    client = await Client.connect(stack.temporal_address, namespace=stack.temporal_namespace)
    env = {**os.environ, "TEMPORAL_ADDRESS": stack.temporal_address, "IDRFLOW_TEMPORAL_RETENTION_DAYS": "40"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "temporal-setup"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "workflow retention 40 day(s)" in done.stdout
        assert await get_retention(client, stack.temporal_namespace) == timedelta(days=40)
    finally:
        await set_retention(client, stack.temporal_namespace, 30)
