"""The claim record on the real stack: it outlives the workflow, corrections the rules refuse leave
the claim running, and a closure added for a tenant moves the deadline of a claim already running."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError, RPCStatusCode

from deploy.bootstrap import seed_tenant
from deploy.devstack import Stack
from shared.temporal import claim_workflow_id, connect
from tests.e2e.test_lifecycle_http import act, stage_is, window_dates
from tests.e2e.test_spine import claim_status, post_claim, running, url, wait_for
from tests.integration.conftest import claim

__all__ = ["running"]


async def purge(tenant: str, claim_id: str) -> None:
    """Delete the claim's workflow from Temporal (history and visibility), then wait until it is gone."""
    client = await connect()
    wid = claim_workflow_id(tenant, claim_id)
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=wid)
        )
    )

    async def gone() -> bool:
        try:
            await client.get_workflow_handle(wid).describe()
            return False
        except RPCError as exc:
            return exc.status == RPCStatusCode.NOT_FOUND

    await wait_for(f"{wid} to leave Temporal", gone, timeout=60)


def backfilled(cid: str, received: date, **extra: Any) -> dict[str, Any]:
    body = claim(
        claim_id=cid,
        bill_sent_on=(received - timedelta(days=20)).isoformat(),
        initial_payment_received_on=received.isoformat(),
        **extra,
    )
    body["lines"][0]["service_date"] = (received - timedelta(days=30)).isoformat()
    return body


async def get(stack: Stack, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    from tests.e2e.test_spine import auth

    async with httpx.AsyncClient(timeout=20) as client:
        return await client.get(url(stack, "dispute", path), headers=headers or auth(stack))


async def test_paid_settled_and_forfeited_claims_keep_their_timeline_after_the_workflow_is_gone(
    running: Stack,
) -> None:
    start, day31, today = window_dates()
    paid, settled, forfeited = (f"REC-{k}-{uuid.uuid4().hex[:6]}" for k in ("P", "S", "F"))
    # paid: through IDR to the last payment
    assert (
        await post_claim(running, backfilled(paid, start, open_negotiation_started_on=start.isoformat()))
    ).status_code == 202
    await wait_for("IDR window", lambda: stage_is(running, paid, "idr_initiation_window"))
    t = today.isoformat()
    for action, body in (
        ("idr-initiated", {"initiated_on": day31.isoformat(), "dispute_number": "DISP-REC-1"}),
        ("entity-selected", {"selected_on": t, "entity": "Maximus", "by": "joint"}),
        ("offer-submitted", {"submitted_on": t, "amounts": {"1": "1500.00"}}),
        ("fees-paid", {"paid_on": t, "administrative_fee": "15.00", "idre_fee": "475.00"}),
        (
            "determination",
            {
                "determined_on": t,
                "lines": [{"line_number": 1, "prevailing_party": "provider", "amount": "1500.00"}],
            },
        ),
        ("payment-received", {"received_on": t, "amount": "1150.00", "reference": "EFT-REC-1"}),
        ("fee-refund-received", {"received_on": t, "amount": "475.00"}),
    ):
        r = await act(running, paid, action, body)
        assert r.status_code == 200, (action, r.text)
    # settled in the open negotiation window
    recent = today - timedelta(days=3)
    assert (await post_claim(running, backfilled(settled, recent))).status_code == 202
    await wait_for("ON window", lambda: stage_is(running, settled, "open_negotiation_window"))
    r = await act(running, settled, "settlement", {"settled_on": t, "amount": "350.00"})  # what was paid
    assert r.status_code == 200 and r.json()["stage"] == "settled"
    # forfeited: its open negotiation deadline passed long ago
    assert (await post_claim(running, backfilled(forfeited, today - timedelta(days=120)))).status_code == 202
    await wait_for("forfeited", lambda: stage_is(running, forfeited, "forfeited"))

    tenant = "demo"
    for cid in (paid, settled, forfeited):
        await wait_for(f"{cid} recorded", lambda cid=cid: get(running, f"/v1/claims/{cid}"))
        await purge(tenant, cid)

    rec = (await claim_status(running, paid)).json()
    assert rec["stage"] == "closed" and rec["final"] is True
    assert rec["amount_owed"] == "1150.00" and rec["amount_received"] == "1150.00"
    assert [x["stage"] for x in rec["transitions"]][-3:] == ["payment_due", "paid", "closed"]
    assert {a["action"] for a in rec["actions"]} >= {"idr_initiated", "determination", "payment_received"}
    assert rec["deadlines"]["payment_deadline"]["rule_id"]
    audit = (await get(running, f"/v1/claims/{paid}/audit")).json()
    assert len(audit) >= 10 and audit == sorted(audit, key=lambda e: e["at"])
    assert (await claim_status(running, settled)).json()["stage"] == "settled"
    lost = (await claim_status(running, forfeited)).json()
    assert lost["stage"] == "forfeited" and lost["transitions"][-1]["stage"] == "forfeited"
    assert lost["final"] is False, lost["transitions"]  # revivable for the grace period
    assert any(
        a["kind"] == "missed"
        for a in (await get(running, f"/v1/claims/{forfeited}/audit")).json()
        if "kind" in a
    )

    # a late correction of an ended claim is recorded, and never starts a second lifecycle
    late = backfilled(paid, start, event_sequence=2, open_negotiation_started_on=start.isoformat())
    assert (await post_claim(running, late)).status_code == 202

    async def noted() -> bool:
        record = (await claim_status(running, paid)).json()
        return any(a["action"] == "claim_event_after_close" for a in record["actions"])

    await wait_for("the late event on the record", noted)
    assert (await claim_status(running, paid)).json()["stage"] == "closed"

    # the forfeited claim was still revivable (not final) when its workflow was purged: a new event
    # is put on its record for an operator, and no second lifecycle starts
    again = backfilled(forfeited, today - timedelta(days=120), event_sequence=2)
    assert (await post_claim(running, again)).status_code == 202

    async def held() -> Any:
        record = (await claim_status(running, forfeited)).json()
        return [a for a in record["actions"] if a["action"] == "claim_event_after_close"]

    found = await wait_for("the event held on the record", held)
    assert "gone" in found[0]["details"]["reason"]
    client = await connect()
    with pytest.raises(RPCError):
        await client.get_workflow_handle(claim_workflow_id(tenant, forfeited)).describe()


async def test_a_correction_the_rules_refuse_leaves_the_claim_running(running: Stack) -> None:
    cid = f"REC-C-{uuid.uuid4().hex[:6]}"
    received = date.today() - timedelta(days=3)
    assert (await post_claim(running, backfilled(cid, received))).status_code == 202
    await wait_for("ON window", lambda: stage_is(running, cid, "open_negotiation_window"))
    # dates no calendar can hold never get in
    far = backfilled(cid, received, event_sequence=2)
    far["initial_payment_received_on"] = "2062-11-02"
    r = await post_claim(running, far)
    assert r.status_code == 422 and "initial_payment_received_on" in r.text
    # a bill date after the initial payment: the rules refuse it, the claim goes on with its facts
    bad = backfilled(cid, received, event_sequence=3)
    bad["bill_sent_on"] = (received + timedelta(days=2)).isoformat()
    bad["lines"][0]["service_date"] = (received - timedelta(days=30)).isoformat()
    r = await post_claim(running, bad)
    assert r.status_code in (202, 422), r.text
    if r.status_code == 202:

        async def refused() -> Any:
            record = (await claim_status(running, cid)).json()
            return [a for a in record["actions"] if a["action"] == "correction_rejected"]

        found = await wait_for("the refusal on the record", refused)
        assert found[0]["outcome"] == "rejected"
    record = (await claim_status(running, cid)).json()
    assert record["stage"] == "open_negotiation_window" and record["event_sequence"] == 1
    ok = await act(running, cid, "settlement", {"settled_on": date.today().isoformat(), "amount": "10.00"})
    assert ok.status_code == 200, ok.text


async def test_a_closure_moves_the_deadline_of_a_running_claim(running: Stack) -> None:
    tenant, key = f"closure-{uuid.uuid4().hex[:6]}", f"key-{uuid.uuid4().hex}"
    await seed_tenant(running.database_url, tenant, "Closure Co", key, None, None)
    headers = {"Authorization": f"Bearer {key}"}
    cid = "CLM-1001"
    body = backfilled(cid, date(2026, 11, 2))
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(url(running, "intake", "/v1/claims"), json=body, headers=headers)
        assert r.status_code == 202, r.text

        async def due() -> str | None:
            r = await client.get(url(running, "dispute", f"/v1/claims/{cid}"), headers=headers)
            if r.status_code != 200 or r.json()["stage"] != "open_negotiation_window":
                return None
            return str(r.json()["deadlines"]["open_negotiation_initiation_deadline"]["due_on"])

        assert await wait_for("the first plan", due) == "2026-12-15"
        closure = {"kind": "closure", "start": "2026-12-14", "end": "2026-12-15", "name": "Portal outage"}
        r = await client.post(url(running, "dispute", "/v1/rules/overrides"), json=closure, headers=headers)
        assert r.status_code == 201 and r.json()["replanned"] == 1, r.text
        await wait_for("the moved deadline", lambda: _is(due, "2026-12-17"))
        record = (await client.get(url(running, "dispute", f"/v1/claims/{cid}"), headers=headers)).json()
        d = record["deadlines"]["open_negotiation_initiation_deadline"]
        assert "Portal outage" in d["explanation"] and "moved from 2026-12-15" in d["explanation"]
        assert record["next_deadline"]["due_on"] == "2026-12-17"
        # the durable timer moved too: the workflow's own view and its search attribute say 12-17
        temporal = await connect()
        desc = await temporal.get_workflow_handle(claim_workflow_id(tenant, cid)).describe()
        from shared.temporal import IDR_NEXT_DEADLINE

        next_at = desc.typed_search_attributes.get(IDR_NEXT_DEADLINE)
        assert next_at is not None and next_at.date().isoformat() in ("2026-12-17", "2026-12-18")
        # the demo tenant's claims are not touched by another tenant's closure
        other = await client.get(url(running, "dispute", "/v1/rules/overrides"), headers=headers)
        assert len(other.json()) == 1


async def _is(check: Any, expected: str) -> bool:
    return bool(await check() == expected)
