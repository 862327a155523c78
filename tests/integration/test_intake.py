"""Intake against real PostgreSQL: durable writes, idempotency, problem details, no PHI in events."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
from sqlalchemy import func, select

from services.intake.models import claim_lines, claims, outbox
from shared.db import get_engine
from tests.integration.conftest import claim


def unique(prefix: str = "CLM") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def outbox_rows(claim_id: str) -> list[dict[str, object]]:
    async with get_engine().connect() as conn:
        rows = (
            await conn.execute(
                select(outbox.c.envelope, outbox.c.topic).where(outbox.c.message_key.endswith(f":{claim_id}"))
            )
        ).all()
    return [dict(r._mapping) for r in rows]


async def test_accepts_the_sample_claim_durably_with_its_outbox_event(intake: httpx.AsyncClient) -> None:
    cid = unique()
    body = claim(
        claim_id=cid, patient={"name": "Jane Roe", "member_id": "MEM-778899", "date_of_birth": "1980-02-03"}
    )
    r = await intake.post("/v1/claims", json=body)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["workflow_id"] == f"claim:demo:{cid}" and answer["status"] == "accepted"

    async with get_engine().connect() as conn:
        row = (await conn.execute(select(claims).where(claims.c.claim_id == cid))).one()
        line = (await conn.execute(select(claim_lines).where(claim_lines.c.claim_id == cid))).one()
    assert row.patient_name == "Jane Roe"  # PHI stays in intake's tables
    assert line.paid == Decimal("350.00") and isinstance(line.billed, Decimal)

    events = await outbox_rows(cid)
    assert len(events) == 1 and events[0]["topic"] == "idr.claims.v1"
    text = str(events[0]["envelope"])
    assert "Jane Roe" not in text and "MEM-778899" not in text and "1980-02-03" not in text
    payload = events[0]["envelope"]["payload"]  # type: ignore[index]
    assert payload["lines"][0]["paid"] == "350.00"  # money travels as a decimal string


async def test_a_retry_with_the_same_key_returns_the_first_response(intake: httpx.AsyncClient) -> None:
    cid = unique()
    body = claim(claim_id=cid)
    first = await intake.post("/v1/claims", json=body, headers={"Idempotency-Key": f"k-{cid}"})
    again = await intake.post("/v1/claims", json=body, headers={"Idempotency-Key": f"k-{cid}"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert len(await outbox_rows(cid)) == 1


async def test_the_same_key_with_another_body_is_a_conflict(intake: httpx.AsyncClient) -> None:
    cid = unique()
    await intake.post("/v1/claims", json=claim(claim_id=cid), headers={"Idempotency-Key": f"k-{cid}"})
    changed = claim(claim_id=cid, state="NY")
    r = await intake.post("/v1/claims", json=changed, headers={"Idempotency-Key": f"k-{cid}"})
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_without_a_key_the_derived_key_deduplicates_and_concurrent_twins_write_once(
    intake: httpx.AsyncClient,
) -> None:
    cid = unique()
    body = claim(claim_id=cid)
    answers = await asyncio.gather(*(intake.post("/v1/claims", json=body) for _ in range(5)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["event_id"] for a in answers}) == 1
    assert len(await outbox_rows(cid)) == 1
    # a changed body under the same event sequence is refused; a higher sequence is a new event
    conflict = await intake.post("/v1/claims", json=claim(claim_id=cid, state="NY"))
    assert conflict.status_code == 409 and conflict.json()["errors"][0]["field"] in (
        "Idempotency-Key",
        "event_sequence",
    )
    newer = await intake.post("/v1/claims", json=claim(claim_id=cid, state="NY", event_sequence=2))
    assert newer.status_code == 202
    assert len(await outbox_rows(cid)) == 2
    async with get_engine().connect() as conn:
        state = (await conn.execute(select(claims.c.state).where(claims.c.claim_id == cid))).scalar_one()
        count = (
            await conn.execute(select(func.count()).select_from(claims).where(claims.c.claim_id == cid))
        ).scalar_one()
    assert state == "NY" and count == 1


def problem_fields(r: httpx.Response) -> dict[str, str]:
    assert r.headers["content-type"] == "application/problem+json", r.text
    body = r.json()
    assert body["status"] == r.status_code and body["type"].startswith("https://") and body["title"]
    return {e["field"]: e["reason"] for e in body.get("errors", [])}


async def test_malformed_json_is_a_400_problem(intake: httpx.AsyncClient) -> None:
    r = await intake.post(
        "/v1/claims", content=b'{"claim_id": "X", ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert "body" in problem_fields(r)
    assert "not valid JSON" in r.json()["detail"]


async def test_each_bad_field_is_named_with_its_reason(intake: httpx.AsyncClient) -> None:
    cases = [
        (claim(surprise="x"), "surprise", "unknown field"),
        (
            claim(lines=[{**claim()["lines"][0], "paid": "-1.00"}]),
            "lines[0].paid",
            "greater than or equal to 0",
        ),
        (claim(lines=[{**claim()["lines"][0], "billed": "10.001"}]), "lines[0].billed", "decimal places"),
        (claim(initial_payment_received_on="2026-02-30"), "initial_payment_received_on", "date"),
        (
            claim(initial_payment_received_on="2026-09-15"),
            "initial_payment_received_on",
            "before the bill was sent",
        ),
        (claim(provider={**claim()["provider"], "npi": "1234567890"}), "provider.npi", "check digit"),
        (claim(state="ZZ"), "state", "state"),
        (
            claim(initial_payment_received_on=None, bill_sent_on=None),
            "initial_payment_received_on",
            "bill_sent_on",
        ),
        (claim(lines=[]), "lines", "at least 1"),
        (claim(payer={**claim()["payer"], "plan_type": "cash"}), "payer.plan_type", "Input should be"),
    ]
    for body, field, reason in cases:
        r = await intake.post("/v1/claims", json=body)
        assert r.status_code == 422, (field, r.text)
        fields = problem_fields(r)
        assert field in fields, (field, fields)
        assert reason in fields[field], (field, fields[field])


async def test_a_missing_or_wrong_api_key_is_401(intake: httpx.AsyncClient) -> None:
    r = await intake.post(
        "/v1/claims", json=claim(claim_id=unique()), headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401 and "Authorization" in problem_fields(r)
    r = await intake.post("/v1/claims", json=claim(claim_id=unique()), headers={"Authorization": ""})
    assert r.status_code == 401


async def test_healthz(intake: httpx.AsyncClient) -> None:
    r = await intake.get("/healthz")
    assert r.status_code == 200 and r.json()["checks"] == {"postgresql": "ok"}
