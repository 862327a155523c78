"""HTTP hygiene and tenant isolation (issue 10 items 5 and 6) on the real database and Temporal:
ids that cannot collide, NUL characters, body limits before parsing, bounded path parameters,
405 with Allow, control characters, and a 503 when no worker answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from deploy.bootstrap import seed_tenant
from deploy.devstack import Stack
from services.dispute.schemas import ClaimLifecycleInput
from shared.settings import get_settings
from shared.temporal import connect

A = {"Authorization": "Bearer key-hygiene-a"}
B = {"Authorization": "Bearer key-hygiene-b"}


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    from fastapi import FastAPI

    from services.dispute.actions import action_router
    from services.dispute.batches import router as batch_router
    from services.dispute.routes import router, rules
    from shared.http import install_problem_handlers

    app = FastAPI()
    install_problem_handlers(app)
    for r in (router, rules, action_router(), batch_router):
        app.include_router(r)
    app.state.temporal = await connect()
    await seed_tenant(stack.database_url, "hygiene-a", "A", "key-hygiene-a", None, None)
    await seed_tenant(stack.database_url, "hygiene-b", "B", "key-hygiene-b", None, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dispute") as c:
        yield c


async def test_a_tenant_id_with_the_workflow_separator_cannot_be_created(stack: Stack) -> None:
    with pytest.raises(ValueError, match="tenant id 'north:east'"):
        await seed_tenant(stack.database_url, "north:east", "North East", "key-ne", None, None)
    with pytest.raises(ValueError):
        await seed_tenant(stack.database_url, "North", "Upper", "key-up", None, None)


async def test_a_claim_id_with_the_separator_is_refused_on_every_path(client: httpx.AsyncClient) -> None:
    """The north / north:east case: tenant north asking for claim 'east:C1' never reaches
    claim:north:east:C1, which is the workflow id of tenant north:east's claim C1."""
    for method, path in (
        ("GET", "/v1/claims/east:C1"),
        ("GET", "/v1/claims/east:C1/audit"),
        ("POST", "/v1/claims/east:C1/actions/payment-received"),
        ("POST", "/v1/claims/east:C1/actions/withdraw"),
        ("GET", "/v1/batches/east:B1"),
    ):
        r = await client.request(
            method, path, headers=A, json={"received_on": "2026-11-30", "amount": "1.00"}
        )
        assert r.status_code == 422, (path, r.text)
        assert r.json()["errors"][0]["field"] in ("claim_id", "batch_id"), r.json()


async def test_another_tenants_claim_cannot_be_read_or_moved(client: httpx.AsyncClient, stack: Stack) -> None:
    """Tenant B names tenant A's claim: every read is 404 and every action is 404 (its workflow id is
    claim:hygiene-b:<id>, which does not exist)."""
    cid = f"HYG-{uuid.uuid4().hex[:6]}"
    temporal: Client = await connect()
    await temporal.start_workflow(
        "ClaimLifecycleWorkflow",
        ClaimLifecycleInput(tenant_id="hygiene-a", claim_id=cid),
        id=f"claim:hygiene-a:{cid}",
        task_queue="nobody-listens",
    )
    assert (await client.get(f"/v1/claims/{cid}", headers=B)).status_code == 404
    assert (await client.get(f"/v1/claims/{cid}/audit", headers=B)).status_code == 404
    body = {"reason": "not yours"}
    r = await client.post(f"/v1/claims/{cid}/actions/withdraw", headers=B, json=body)
    assert r.status_code == 404 and r.json()["type"].endswith("claim-not-found"), r.text
    csv = await client.get("/v1/claims.csv", headers=B)
    assert cid not in csv.text


async def test_no_worker_answering_is_a_503_not_a_hang(client: httpx.AsyncClient) -> None:
    cid = f"HYG-{uuid.uuid4().hex[:6]}"
    temporal = await connect()
    await temporal.start_workflow(
        "ClaimLifecycleWorkflow",
        ClaimLifecycleInput(tenant_id="hygiene-a", claim_id=cid),
        id=f"claim:hygiene-a:{cid}",
        task_queue="nobody-listens",
    )
    settings = get_settings()
    saved = settings.temporal_request_timeout_seconds
    settings.temporal_request_timeout_seconds = 1.0
    try:
        r = await client.post(f"/v1/claims/{cid}/actions/withdraw", headers=A, json={"reason": "test"})
    finally:
        settings.temporal_request_timeout_seconds = saved
    assert r.status_code == 503 and r.json()["type"].endswith("worker-unavailable"), r.text
    assert r.headers["retry-after"] == "5"


async def test_nul_characters_are_refused_in_path_query_and_body(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/claims?payer=a%00b", headers=A)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query"
    r = await client.post(
        "/v1/rules/overrides",
        headers={**A, "Content-Type": "application/json"},
        content=b'{"kind": "closure", "start": "2026-12-14", "end": "2026-12-15", "name": "a\\u0000b"}',
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"


async def test_bodies_are_limited_and_authenticated_before_they_are_read(client: httpx.AsyncClient) -> None:
    big = b"{" + b" " * (get_settings().max_body_bytes + 10) + b"}"
    r = await client.post(
        "/v1/rules/overrides", headers={**A, "Content-Type": "application/json"}, content=big
    )
    assert r.status_code == 413 and r.json()["type"].endswith("payload-too-large")
    r = await client.post("/v1/rules/overrides", headers={"Content-Type": "application/json"}, content=big)
    assert r.status_code == 401  # no key: refused before the body is read


async def test_path_parameters_are_bounded_and_405_says_what_is_allowed(client: httpx.AsyncClient) -> None:
    r = await client.delete(f"/v1/rules/overrides/{2**64}", headers=A)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "override_id"
    r = await client.put("/v1/rules/overrides", headers=A, json={})
    assert r.status_code == 405 and "GET" in r.headers["allow"] and "POST" in r.headers["allow"]
    item = {
        "claim_id": "X1",
        "line_number": 1,
        "provider_npi": "1234567893",
        "provider_tin": "123456789",
        "payer_id": "Acme",
        "plan_id": "Acme",
        "plan_type": "fully_insured_group",
        "service_code": "99285",
        "code_system": "CPT",
        "service_date": "2000-01-01",
        "open_negotiation_started_on": "2000-01-03",
        "service_category": "emergency",
    }
    r = await client.post(
        "/v1/rules/batch-check", headers=A, json={"items": [item, {**item, "claim_id": "X2"}]}
    )
    assert r.status_code in (200, 422) and r.status_code != 500, r.text


async def test_control_characters_are_refused_in_names_and_free_text(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/claims/C1/actions/withdraw", headers=A, json={"reason": "ring \x07 the bell"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    r = await client.post(
        "/v1/claims/C1/actions/entity-selected",
        headers=A,
        json={"selected_on": "2026-11-30", "entity": "Maximus\nBcc: x@example", "by": "joint"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "entity"


async def test_every_answer_carries_a_request_id(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/rules/overrides", headers={**A, "X-Request-ID": "trace-me-1"})
    assert r.headers["x-request-id"] == "trace-me-1"
    r = await client.get("/v1/rules/overrides", headers=A)
    assert len(r.headers["x-request-id"]) == 32
