"""A request whose Temporal server cannot be reached is a 503 problem (retry), never a 500."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from temporalio.service import RPCError, RPCStatusCode

from shared.http import Problem, install_problem_handlers
from shared.temporal import _in_time


async def _refused(status: RPCStatusCode) -> None:
    raise RPCError("connection refused", status, b"")


@pytest.mark.parametrize("status", [RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED])
async def test_an_unreachable_temporal_is_a_503_to_retry(status: RPCStatusCode) -> None:
    with pytest.raises(Problem) as caught:
        await _in_time(_refused(status))
    assert caught.value.status == 503 and caught.value.type == "temporal-unavailable"


async def test_an_rpc_failure_outside_a_bounded_call_is_a_problem_not_a_500() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/down")
    async def down() -> None:
        await _refused(RPCStatusCode.UNAVAILABLE)

    @app.get("/broken")
    async def broken() -> None:
        await _refused(RPCStatusCode.INTERNAL)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/down")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.headers["content-type"].startswith("application/problem+json")
        assert (await client.get("/broken")).status_code == 502
