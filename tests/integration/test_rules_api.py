"""The rules over HTTP on the dispute service, with each tenant's calendar overrides in PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from deploy.bootstrap import seed_tenant
from deploy.devstack import Stack
from services.dispute.schemas import ClaimLifecycleInput
from shared.settings import Settings
from shared.temporal import IDR_STAGE, IDR_TENANT, claim_workflow_id, converter_for


@pytest.fixture
async def dispute(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    # the routers without the app's lifespan (worker and consumer are not needed for the rules)
    from fastapi import FastAPI

    from services.dispute.routes import router, rules
    from shared.http import install_problem_handlers

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    app.include_router(rules)
    app.state.temporal = await temporal(stack)  # an override replans the tenant's running claims
    await seed_tenant(stack.database_url, "rules-a", "A", "key-rules-a", None, None)
    await seed_tenant(stack.database_url, "rules-b", "B", "key-rules-b", None, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dispute") as client:
        yield client


A = {"Authorization": "Bearer key-rules-a"}
B = {"Authorization": "Bearer key-rules-b"}


async def temporal(stack: Stack) -> Client:
    settings = Settings(temporal_address=stack.temporal_address, temporal_namespace=stack.temporal_namespace)
    return await Client.connect(
        stack.temporal_address, namespace=stack.temporal_namespace, data_converter=converter_for(settings)
    )


async def test_an_override_replans_a_claim_not_planned_yet(stack: Stack, dispute: httpx.AsyncClient) -> None:
    """A claim whose workflow has started but not planned (its first plan, made by the consumer, may
    predate the override) is not on the record yet: the override still tells it (``calendar_changed``),
    and its first pass then plans with the new calendar instead of the consumer's plan."""
    client = await temporal(stack)
    claim_id = f"C-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(  # on a queue no worker polls: it stays "received"
        "ClaimLifecycleWorkflow",
        ClaimLifecycleInput(tenant_id="rules-a", claim_id=claim_id),
        id=claim_workflow_id("rules-a", claim_id),
        task_queue=f"nobody-{claim_id}",
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(IDR_TENANT, "rules-a"), SearchAttributePair(IDR_STAGE, "received")]
        ),
    )
    try:
        query = f"WorkflowId = '{handle.id}' AND IdrStage = 'received'"
        for _ in range(100):  # visibility is eventually consistent
            if (await client.count_workflows(query)).count:
                break
            await asyncio.sleep(0.1)
        closure = {"kind": "closure", "start": "2031-03-03", "end": "2031-03-03", "name": "Flood"}
        created = await dispute.post("/v1/rules/overrides", json=closure, headers=A)
        assert created.status_code == 201 and created.json()["replanned"] == 1, created.text
        other = await dispute.post("/v1/rules/overrides", json=closure, headers=B)  # another tenant's
        assert other.status_code == 201 and other.json()["replanned"] == 0
        signals = [
            e.workflow_execution_signaled_event_attributes.signal_name
            for e in (await handle.fetch_history()).events
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert signals == ["calendar_changed"]
    finally:
        await handle.terminate("test over")
        for key in (A, B):
            for o in (await dispute.get("/v1/rules/overrides", headers=key)).json():
                await dispute.delete(f"/v1/rules/overrides/{o['id']}", headers=key)


async def test_deadlines_explain_themselves(dispute: httpx.AsyncClient) -> None:
    r = await dispute.post(
        "/v1/rules/deadlines",
        json={"initial_payment_received_on": "2026-11-02", "idr_initiated_on": "2026-12-31", "batched": True},
        headers=A,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    d = body["deadlines"]["open_negotiation_initiation_deadline"]
    assert d["due_on"] == "2026-12-15" and d["rule_id"] == "D1" and d["rule_set"] == "federal-idr-2022"
    assert "skipped 2026-11-11 Veterans Day, 2026-11-26 Thanksgiving Day" in d["explanation"]
    assert body["administrative_fee_per_party"] == "15" and body["fee_rule_set"] == "fees-2026"
    assert body["idre_fee_range"] == ["268", "1173"]


async def test_bad_triggers_are_problems_naming_the_field(dispute: httpx.AsyncClient) -> None:
    r = await dispute.post(
        "/v1/rules/deadlines",
        json={"open_negotiation_started_on": "2026-12-01", "idr_initiated_on": "2026-11-30"},
        headers=A,
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "idr_initiated_on"
    r = await dispute.post("/v1/rules/deadlines", json={"idr_initiated_on": "2019-01-02"}, headers=A)
    assert r.status_code == 422 and "no fees before" in r.json()["detail"]


async def test_a_tenants_overrides_move_only_its_own_deadlines(dispute: httpx.AsyncClient) -> None:
    ext = {
        "kind": "extension",
        "start": "2026-12-10",
        "end": "2026-12-20",
        "moves_to": "2027-01-08",
        "name": "Portal outage extension",
        "reference": "CMS notice",
        "deadlines": ["open_negotiation_initiation_deadline"],
    }
    created = await dispute.post("/v1/rules/overrides", json=ext, headers=A)
    assert created.status_code == 201, created.text
    trig = {"initial_payment_received_on": "2026-11-02"}
    a = (await dispute.post("/v1/rules/deadlines", json=trig, headers=A)).json()
    b = (await dispute.post("/v1/rules/deadlines", json=trig, headers=B)).json()
    da = a["deadlines"]["open_negotiation_initiation_deadline"]
    assert da["due_on"] == "2027-01-08" and da["moved_by"] == ["Portal outage extension"]
    assert b["deadlines"]["open_negotiation_initiation_deadline"]["due_on"] == "2026-12-15"

    listed = (await dispute.get("/v1/rules/overrides", headers=A)).json()
    assert [o["override"]["name"] for o in listed] == ["Portal outage extension"]
    assert (await dispute.get("/v1/rules/overrides", headers=B)).json() == []
    oid = created.json()["id"]
    assert (await dispute.delete(f"/v1/rules/overrides/{oid}", headers=B)).status_code == 404
    removed = await dispute.delete(f"/v1/rules/overrides/{oid}", headers=A)
    assert removed.status_code == 200 and removed.json()["id"] == oid and removed.json()["replanned"] == 0
    again = (await dispute.post("/v1/rules/deadlines", json=trig, headers=A)).json()
    assert again["deadlines"]["open_negotiation_initiation_deadline"]["due_on"] == "2026-12-15"


async def test_an_override_that_cannot_be_is_refused(dispute: httpx.AsyncClient) -> None:
    bad = {
        "kind": "extension",
        "start": "2026-12-10",
        "end": "2026-12-20",
        "moves_to": "2027-01-08",
        "name": "x",
        "deadlines": ["payment_deadline"],
    }
    r = await dispute.post("/v1/rules/overrides", json=bad, headers=A)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "deadlines"
    assert "cannot be extended" in r.json()["errors"][0]["reason"]


async def test_eligibility_over_http(dispute: httpx.AsyncClient) -> None:
    facts = {
        "service_category": "emergency",
        "plan_type": "self_insured_erisa",
        "state": "TX",
        "open_negotiation_started_on": "2023-03-06",
        "idr_initiated_on": "2023-04-21",
    }
    late = (await dispute.post("/v1/rules/eligibility", json=facts, headers=A)).json()
    assert late["status"] == "ineligible"
    assert [r["code"] for r in late["reasons"]] == ["INITIATION_LATE"]
    ok = await dispute.post(
        "/v1/rules/eligibility", json={**facts, "idr_initiated_on": "2023-04-20"}, headers=A
    )
    assert ok.json()["status"] == "eligible"
    medicare = {**facts, "plan_type": "medicare", "idr_initiated_on": "2023-04-20"}
    assert (await dispute.post("/v1/rules/eligibility", json=medicare, headers=A)).json()["reasons"][0][
        "code"
    ] == ("NOT_NSA_ELIGIBLE")
    bad = await dispute.post("/v1/rules/eligibility", json={**facts, "plan_type": "cash"}, headers=A)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "plan_type"


async def test_batch_check_over_http(dispute: httpx.AsyncClient) -> None:
    def item(n: int, npi: str = "1234567893", code: str = "99285") -> dict[str, object]:
        return {
            "claim_id": f"CLM-{n}",
            "line_number": 1,
            "provider_npi": npi,
            "provider_tin": "123456789" if npi == "1234567893" else "987654321",
            "payer_id": "ACME",
            "plan_id": "ACME-PLAN-1",
            "plan_type": "self_insured_erisa",
            "service_code": code,
            "code_system": "CPT",
            "service_date": "2026-09-28",
            "open_negotiation_started_on": "2026-10-15",
            "service_category": "emergency",
            "condition_group": "chest-pain",
        }

    good = (await dispute.post("/v1/rules/batch-check", json={"items": [item(1), item(2)]}, headers=A)).json()
    assert good["ok"] is True and good["rule_set"] == "batching-2022"
    mixed = {"items": [item(1), item(2, npi="1245319599")]}
    bad = (await dispute.post("/v1/rules/batch-check", json=mixed, headers=A)).json()
    assert bad["ok"] is False and [v["code"] for v in bad["violations"]] == ["DIFFERENT_PROVIDER"]
