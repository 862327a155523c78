"""Idempotency keys against real PostgreSQL (``dispute.action_requests``): replay, reuse, stored and
unstored failures, a released key, twins in flight, tenants apart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Header, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from deploy.devstack import Stack
from services.dispute.models import action_requests
from shared.db import get_engine
from shared.http import PROBLEM_JSON, Problem, install_problem_handlers
from shared.idempotency import IdempotencyKey, run_idempotent, update_id_for


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Decimal
    outcome: str = "ok"  # ok | rejected | missing | boom


class Fake:
    """An action whose outcome the body chooses; it records the update id of every run."""

    def __init__(self) -> None:
        self.update_ids: list[str | None] = []
        self.fail_once = False

    async def __call__(self, claim_id: str, body: Body, update_id: str | None) -> dict[str, Any]:
        self.update_ids.append(update_id)
        await asyncio.sleep(0.05)
        if self.fail_once:
            self.fail_once = False
            raise RuntimeError("Temporal unavailable")
        if body.outcome == "rejected":
            raise Problem(
                409, "action-rejected", "The action is not possible now", "stage: not now", field="stage"
            )
        if body.outcome == "missing":
            raise Problem(404, "claim-not-found", "Claim not found", "no such claim", field="claim_id")
        return {"claim_id": claim_id, "amount_received": str(body.amount), "runs": len(self.update_ids)}


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, Fake]]:
    fake = Fake()
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/v1/claims/{claim_id}/actions/payment-received")
    async def act(
        claim_id: str,
        body: Body,
        request: Request,
        x_tenant: str = Header(),
        idempotency_key: IdempotencyKey = None,
    ) -> Any:
        async def run(update_id: str | None) -> dict[str, Any]:
            return await fake(claim_id, body, update_id)

        return await run_idempotent(request, action_requests, x_tenant, idempotency_key, body, run)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://dispute") as client:
        yield client, fake


def key() -> str:
    return f"k-{uuid.uuid4()}"


async def post(
    client: httpx.AsyncClient,
    k: str | None,
    body: dict[str, Any],
    claim_id: str = "C-1",
    tenant: str = "demo",
) -> httpx.Response:
    # a key is required before the body is read (the request guard); the stand-in app takes the tenant
    # from X-Tenant
    headers = {
        "Authorization": "Bearer stand-in",
        "X-Tenant": tenant,
        **({"Idempotency-Key": k} if k else {}),
    }
    return await client.post(f"/v1/claims/{claim_id}/actions/payment-received", json=body, headers=headers)


async def stored(tenant: str, k: str) -> Any:
    async with get_engine().connect() as conn:
        return (
            await conn.execute(
                select(action_requests).where(
                    action_requests.c.tenant_id == tenant, action_requests.c.key == k
                )
            )
        ).first()


async def test_a_retry_gets_the_first_answer_and_the_action_runs_once(
    api: tuple[httpx.AsyncClient, Fake],
) -> None:
    client, fake = api
    k = key()
    first = await post(client, k, {"amount": "600.00"})
    again = await post(client, k, {"amount": "600"})  # the same amount, spelled otherwise
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() == {"claim_id": "C-1", "amount_received": "600.00", "runs": 1}
    assert again.headers["Idempotent-Replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert again.headers["content-type"] == "application/json"
    assert fake.update_ids == [update_id_for("dispute", "demo", k)]
    row = await stored("demo", k)
    assert row.status_code == 200 and row.path == "/v1/claims/C-1/actions/payment-received"
    assert row.update_id == fake.update_ids[0] and row.completed_at is not None


async def test_the_same_key_for_another_request_is_a_409_naming_the_header(
    api: tuple[httpx.AsyncClient, Fake],
) -> None:
    client, fake = api
    k = key()
    assert (await post(client, k, {"amount": "600.00"})).status_code == 200
    for other in (
        await post(client, k, {"amount": "500.00"}),
        await post(client, k, {"amount": "600.00"}, claim_id="C-2"),
    ):
        assert other.status_code == 409 and other.headers["content-type"] == PROBLEM_JSON
        problem = other.json()
        assert problem["type"].endswith("/idempotency-key-reused")
        assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert len(fake.update_ids) == 1


async def test_a_rejection_is_stored_and_replayed_as_a_problem(api: tuple[httpx.AsyncClient, Fake]) -> None:
    client, fake = api
    k = key()
    first = await post(client, k, {"amount": "1.00", "outcome": "rejected"})
    again = await post(client, k, {"amount": "1.00", "outcome": "rejected"})
    assert first.status_code == again.status_code == 409
    assert first.headers["content-type"] == again.headers["content-type"] == PROBLEM_JSON
    assert again.json() == first.json() and first.json()["type"].endswith("/action-rejected")
    assert again.headers["Idempotent-Replayed"] == "true" and len(fake.update_ids) == 1


async def test_a_transient_failure_is_not_stored_and_the_retry_reuses_the_update_id(
    api: tuple[httpx.AsyncClient, Fake],
) -> None:
    client, fake = api
    k = key()
    fake.fail_once = True
    failed = await post(client, k, {"amount": "600.00"})
    assert failed.status_code == 500
    pending = await stored("demo", k)
    assert pending.status_code is None and pending.response is None
    # only the same request may retry it: the update may have been applied
    assert (await post(client, k, {"amount": "1.00"})).status_code == 409
    retried = await post(client, k, {"amount": "600.00"})
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert fake.update_ids == [update_id_for("dispute", "demo", k)] * 2
    assert (await stored("demo", k)).status_code == 200


async def test_a_refusal_that_changed_nothing_releases_the_key(api: tuple[httpx.AsyncClient, Fake]) -> None:
    client, _ = api
    k = key()
    missing = await post(client, k, {"amount": "600.00", "outcome": "missing"})
    assert missing.status_code == 404 and await stored("demo", k) is None
    corrected = await post(client, k, {"amount": "650.00"})
    assert corrected.status_code == 200 and corrected.json()["amount_received"] == "650.00"


async def test_twins_in_flight_get_one_answer(api: tuple[httpx.AsyncClient, Fake]) -> None:
    client, fake = api
    k = key()
    answers = await asyncio.gather(*(post(client, k, {"amount": "600.00"}) for _ in range(3)))
    assert {r.status_code for r in answers} == {200}
    assert all(r.json() == answers[0].json() for r in answers)  # the stored answer, whoever ran
    assert answers[0].json()["amount_received"] == "600.00"
    assert set(fake.update_ids) == {update_id_for("dispute", "demo", k)}


async def test_tenants_have_their_own_keys(api: tuple[httpx.AsyncClient, Fake]) -> None:
    client, fake = api
    k = key()
    assert (await post(client, k, {"amount": "600.00"})).status_code == 200
    other = await post(client, k, {"amount": "700.00"}, tenant="other")
    assert other.status_code == 200 and other.json()["amount_received"] == "700.00"
    assert fake.update_ids == [update_id_for("dispute", "demo", k), update_id_for("dispute", "other", k)]
