"""Integration files into intake on real PostgreSQL: 837 claims, 835 remittances matched to tracked
claims (or kept for review), FHIR EOBs and canonical batches; idempotent, never a 5xx."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from deploy.devstack import Stack
from services.intake.ingest_schemas import EXAMPLE_EOB
from services.intake.models import claims, intake_files, outbox
from shared.db import get_engine
from tests.integration.conftest import claim
from tests.integration.x12_kit import x835, x837

X12 = {"content-type": "application/edi-x12"}
PROFILE = {"plan_type": "self_insured_erisa", "state": "TX"}


@pytest.fixture
async def intake(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    from services.intake.app import create_app

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app()),
        base_url="http://intake",
        headers={"Authorization": f"Bearer {stack.api_key}"},  # type: ignore[attr-defined]
    ) as client:
        yield client


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def stored(claim_id: str) -> Any:
    async with get_engine().connect() as conn:
        return (await conn.execute(select(claims).where(claims.c.claim_id == claim_id))).first()


async def events_for(claim_id: str) -> list[dict[str, Any]]:
    async with get_engine().connect() as conn:
        rows = (
            await conn.execute(select(outbox.c.envelope).where(outbox.c.message_key.endswith(f":{claim_id}")))
        ).all()
    return [r.envelope for r in rows]


def today() -> str:
    return datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).date().isoformat()


async def test_an_837_tracks_its_claims_and_names_what_it_cannot_say(intake: httpx.AsyncClient) -> None:
    cid = uid("X837")
    body = x837(cid)
    r = await intake.post("/v1/claims/x12", content=body, headers=X12, params=PROFILE)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["format"] == "x12-837" and answer["summary"] == {"accepted": 1}
    assert answer["results"][0]["claim_id"] == cid and answer["results"][0]["result"] == "accepted"
    row = await stored(cid)
    assert row.bill_sent_on.isoformat() == "2026-09-30"  # BHT04
    assert row.initial_payment_received_on is None  # the plan's 30-day clock runs
    assert row.service_category == "emergency"  # place of service 23
    assert row.provider_npi == "1234567893" and row.provider_tin == "123456789"
    assert row.patient_name is None  # the 837's patient is never read

    again = await intake.post("/v1/claims/x12", content=body, headers=X12, params=PROFILE)
    assert again.status_code == 200 and again.json()["duplicate_file"] is True
    assert again.json()["results"][0]["result"] == "duplicate"

    other = uid("X837")
    missing = await intake.post("/v1/claims/x12", content=x837(other, pos="11"), headers=X12)
    assert missing.status_code == 202
    [result] = missing.json()["results"]
    assert result["result"] == "rejected"
    fields = {e["field"] for e in result["errors"]}
    assert fields == {"payer.plan_type", "service_category", "state"}, result
    assert await stored(other) is None


async def test_an_835_starts_the_clock_of_a_tracked_claim_and_a_later_one_is_a_payment(
    intake: httpx.AsyncClient,
) -> None:
    cid = uid("R835")
    assert (
        await intake.post("/v1/claims/x12", content=x837(cid), headers=X12, params=PROFILE)
    ).status_code == 202

    remit = x835([{"claim_id": cid, "billed": "2400", "paid": "350", "pr": "50"}])
    r = await intake.post("/v1/remittances", content=remit, headers=X12)
    assert r.status_code == 202, r.text
    [result] = r.json()["results"]
    assert result["result"] == "matched" and result["applied_as"] == "initial_payment", result
    assert result["matched_claim_id"] == cid
    row = await stored(cid)
    assert row.initial_payment_received_on.isoformat() == today()  # the day the file arrived
    assert row.latest_event_sequence == 2
    adjudicated = [e for e in await events_for(cid) if e["event_type"] == "ClaimAdjudicated"]
    latest = max(adjudicated, key=lambda e: e["payload"]["event_sequence"])
    assert latest["payload"]["initial_payment_received_on"] == today()
    assert latest["payload"]["lines"][0]["paid"] == "350.00" or latest["payload"]["lines"][0]["paid"] == "350"
    assert latest["payload"]["lines"][0]["cost_sharing"] in ("50", "50.00")

    # the same file again, and the same remittance claim re-sent in another file
    assert (await intake.post("/v1/remittances", content=remit, headers=X12)).json()["duplicate_file"] is True

    # the plan pays the award later: a payment fact for the dispute service
    award = x835([{"claim_id": cid, "billed": "2400", "paid": "900", "pccn": "PCN-AWARD"}], trace="CHK777")
    paid = (await intake.post("/v1/remittances", content=award, headers=X12)).json()["results"][0]
    assert paid["result"] == "matched" and paid["applied_as"] == "payment", paid
    payments = [e for e in await events_for(cid) if e["event_type"] == "RemittancePayment"]
    assert len(payments) == 1
    assert payments[0]["payload"]["amount"] == "900" and payments[0]["payload"]["paid_on"] == "2026-11-05"
    assert "CHK777" in payments[0]["payload"]["reference"]


async def test_unmatched_remittance_claims_wait_for_review_with_candidates_and_can_be_applied(
    intake: httpx.AsyncClient,
) -> None:
    cid = uid("REV")
    await intake.post("/v1/claims/x12", content=x837(cid, billed="1800"), headers=X12, params=PROFILE)
    # another patient control number, same provider and payer, another amount: no certain match
    r = await intake.post(
        "/v1/remittances",
        content=x835([{"claim_id": uid("ZZ"), "billed": "1799", "paid": "200"}]),
        headers=X12,
    )
    [result] = r.json()["results"]
    assert result["result"] == "unmatched"
    assert cid in {c["claim_id"] for c in result["candidates"]}
    listed = (await intake.get("/v1/remittances/unmatched", params={"limit": 500})).json()
    mine = [x for x in listed if x["id"] == result["remittance_id"]]
    assert mine and mine[0]["state"] == "unmatched" and mine[0]["paid_amount"] == "200.00"

    applied = await intake.post(f"/v1/remittances/{result['remittance_id']}/apply", json={"claim_id": cid})
    assert applied.status_code == 200, applied.text
    assert applied.json()["state"] == "matched" and applied.json()["applied_as"] == "initial_payment"
    assert (await stored(cid)).initial_payment_received_on is not None
    twice = await intake.post(f"/v1/remittances/{result['remittance_id']}/apply", json={"claim_id": cid})
    assert twice.status_code == 200 and twice.json()["event_id"] == applied.json()["event_id"]
    elsewhere = await intake.post(
        f"/v1/remittances/{result['remittance_id']}/apply", json={"claim_id": "OTHER"}
    )
    assert elsewhere.status_code == 409
    assert (await intake.post("/v1/remittances/999999999/apply", json={"claim_id": cid})).status_code == 404


async def test_medicare_remits_reversals_and_the_same_amount_twice_are_kept_not_applied(
    intake: httpx.AsyncClient,
) -> None:
    a, b = uid("AMB"), uid("AMB")
    for cid in (a, b):
        await intake.post("/v1/claims/x12", content=x837(cid, billed="3131"), headers=X12, params=PROFILE)
    r = await intake.post(
        "/v1/remittances",
        content=x835(
            [
                {"claim_id": uid("MCR"), "billed": "500", "paid": "100", "filing": "MB"},
                {"claim_id": uid("NONE"), "billed": "3131", "paid": "10"},
                {"claim_id": a, "billed": "3131", "paid": "-10", "status": "22"},
            ]
        ),
        headers=X12,
    )
    assert r.status_code == 202, r.text
    medicare, ambiguous, reversal = r.json()["results"]
    assert medicare["result"] == "not_candidate" and "medicare" in medicare["reason"]
    assert ambiguous["result"] == "ambiguous" and {a, b} <= {c["claim_id"] for c in ambiguous["candidates"]}
    assert reversal["result"] == "review" and "reversal" in reversal["reason"]
    assert (await stored(a)).initial_payment_received_on is None  # nothing applied


async def test_a_fhir_eob_is_matched_like_a_remittance(intake: httpx.AsyncClient) -> None:
    cid = uid("EOB")
    await intake.post("/v1/claims/x12", content=x837(cid), headers=X12, params=PROFILE)
    eob = {**EXAMPLE_EOB, "id": cid}
    r = await intake.post(
        "/v1/fhir/ExplanationOfBenefit",
        content=json.dumps(eob),
        headers={"content-type": "application/fhir+json"},
    )
    assert r.status_code == 202, r.text
    [result] = r.json()["results"]
    assert result["result"] == "matched" and result["applied_as"] == "initial_payment"
    stranger = {**eob, "id": uid("EOB"), "insurer": {"display": uid("Unknown Plan")}}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": stranger}]}
    r = await intake.post("/v1/fhir/ExplanationOfBenefit", json=bundle)
    assert r.status_code == 202 and r.json()["results"][0]["result"] == "unmatched"


async def test_a_batch_accepts_each_claim_on_its_own(intake: httpx.AsyncClient) -> None:
    good = [claim(claim_id=uid("B")) for _ in range(3)]
    bad = claim(claim_id=uid("B"), state="ZZ")
    r = await intake.post("/v1/claims:batch", json={"claims": [*good, bad]})
    assert r.status_code == 202, r.text
    assert r.json()["summary"] == {"accepted": 3, "rejected": 1}
    rejected = r.json()["results"][3]
    assert rejected["result"] == "rejected" and "state" in rejected["reason"]
    again = await intake.post("/v1/claims:batch", json={"claims": good})
    assert again.json()["summary"] == {"duplicate": 3}
    assert (await intake.post("/v1/claims:batch", json={"claims": []})).status_code == 422
    too_many = await intake.post("/v1/claims:batch", json={"claims": [good[0]] * 1001})
    assert too_many.status_code == 422


async def test_files_that_cannot_be_read_are_problems_never_5xx(intake: httpx.AsyncClient) -> None:
    cid = uid("UTF")
    await intake.post("/v1/claims/x12", content=x837(cid), headers=X12, params=PROFILE)
    cases = [
        (b"", 422),
        (b"   \n", 422),
        (b"<?xml version='1.0'?><remit><claim/></remit>", 422),
        (bytes(range(256)) * 20, 422),
        (b"ISA*00*", 422),
    ]
    for body, status in cases:
        r = await intake.post("/v1/remittances", content=body, headers=X12)
        assert r.status_code == status, (body[:30], r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    wrong = await intake.post("/v1/remittances", content=x837(uid("W")), headers=X12)
    assert wrong.status_code == 415 and "x12-837" in wrong.json()["detail"]
    # UTF-16 (no BOM) and a multipart upload, as clearinghouses send them
    utf16 = x835([{"claim_id": cid, "billed": "2400", "paid": "0", "status": "4"}]).encode("utf-16-le")
    r = await intake.post(
        "/v1/remittances", content=utf16, headers={"content-type": "application/octet-stream"}
    )
    assert r.status_code == 202, r.text
    assert r.json()["results"][0]["applied_as"] == "initial_payment"  # a denial starts the clock too
    file = x835([{"claim_id": uid("MP"), "billed": "10", "paid": "1"}])
    r = await intake.post("/v1/remittances", files={"file": ("era.835", file, "application/edi-x12")})
    assert r.status_code == 202 and r.json()["results"][0]["result"] == "unmatched"
    async with get_engine().connect() as conn:
        kept = (
            await conn.execute(
                select(intake_files.c.filename, intake_files.c.size_bytes).where(
                    intake_files.c.id == r.json()["file_id"]
                )
            )
        ).one()
    assert kept.filename == "era.835" and kept.size_bytes == len(file)


async def test_what_a_hostile_review_found_stays_fixed(intake: httpx.AsyncClient) -> None:
    a, b = uid("HA"), uid("HB")
    for cid in (a, b):
        await intake.post("/v1/claims/x12", content=x837(cid), headers=X12, params=PROFILE)
    first = x835([{"claim_id": a, "billed": "2400", "paid": "350", "pccn": "000123"}])
    assert (await intake.post("/v1/remittances", content=first, headers=X12)).json()["results"][0][
        "applied_as"
    ] == "initial_payment"

    # another payer's claim with the same control number, for claim b: b's own initial payment
    other = x835([{"claim_id": b, "billed": "2400", "paid": "777", "pccn": "000123"}], payer="OTHER PLAN")
    [r] = (await intake.post("/v1/remittances", content=other, headers=X12)).json()["results"]
    assert r["matched_claim_id"] == b and r["applied_as"] == "initial_payment", r

    # the same ERA re-sent with 350.00 for 350: the same remittance claim, not a payment
    resent = first.replace("*350*", "*350.00*").replace("EFT", "EFT")
    [d] = (await intake.post("/v1/remittances", content=resent, headers=X12)).json()["results"]
    assert d["result"] in ("duplicate", "review"), d
    assert d.get("applied_as") is None

    # a reversal and its correction in one file, $0 and odd amounts after the initial payment:
    # for a person, never a payment
    fix = x835(
        [
            {"claim_id": a, "billed": "2400", "paid": "-350", "status": "22", "pccn": "000123"},
            {"claim_id": a, "billed": "2400", "paid": "420", "pccn": "000123"},
        ]
    )
    reversal, correction = (await intake.post("/v1/remittances", content=fix, headers=X12)).json()["results"]
    assert reversal["result"] == "review" and correction["result"] == "review", (reversal, correction)
    zero = x835([{"claim_id": a, "billed": "2400", "paid": "0", "status": "4", "pccn": "Z1"}])
    [z] = (await intake.post("/v1/remittances", content=zero, headers=X12)).json()["results"]
    assert z["result"] == "review"
    odd = x835([{"claim_id": a, "billed": "2400", "paid": "350.005", "pccn": "Z2"}])
    [o] = (await intake.post("/v1/remittances", content=odd, headers=X12)).json()["results"]
    assert o["result"] == "review" and o.get("applied_as") is None
    assert not [e for e in await events_for(a) if e["event_type"] == "RemittancePayment"]

    dismissed = await intake.post(
        f"/v1/remittances/{reversal['remittance_id']}/dismiss", json={"reason": "booked"}
    )
    assert dismissed.status_code == 200 and dismissed.json()["state"] == "dismissed"
    listed = (await intake.get("/v1/remittances/unmatched", params={"limit": 500})).json()
    assert reversal["remittance_id"] not in {x["id"] for x in listed}

    # amounts beyond the record and a NUL in a FHIR id: answers, never a 500, the file kept
    huge = x835(
        [
            {"claim_id": uid("BIG"), "billed": "99999999999", "paid": "1E+20"},
            {"claim_id": uid("OK"), "billed": "10", "paid": "1"},
        ]
    )
    r2 = await intake.post("/v1/remittances", content=huge, headers=X12)
    assert r2.status_code == 202, r2.text
    assert len(r2.json()["results"]) == 2
    eob = {**EXAMPLE_EOB, "id": "EOB\u0000X", "insurer": {"display": "Pl\u0000an"}}
    r3 = await intake.post(
        "/v1/fhir/ExplanationOfBenefit",
        content=json.dumps(eob),
        headers={"content-type": "application/fhir+json"},
    )
    assert r3.status_code in (202, 422), r3.text

    # a batch entry that is not an object is refused alone
    batch = await intake.post(
        "/v1/claims:batch", json={"claims": [claim(claim_id=uid("BO")), "str", None, [1]]}
    )
    assert batch.status_code == 202 and batch.json()["summary"] == {"accepted": 1, "rejected": 3}


async def test_a_match_by_provider_payer_and_amount_only_starts_a_clock_when_a_service_date_agrees(
    intake: httpx.AsyncClient,
) -> None:
    cid = uid("FZ")
    await intake.post("/v1/claims/x12", content=x837(cid, billed="4321.09"), headers=X12, params=PROFILE)
    # another patient control number: the right provider, payer and amount, another service date
    wrong_day = x835([{"claim_id": uid("X"), "billed": "4321.09", "paid": "5", "service_date": "20260101"}])
    [r] = (await intake.post("/v1/remittances", content=wrong_day, headers=X12)).json()["results"]
    assert r["result"] == "review" and r["matched_claim_id"] is None
    assert cid in {c["claim_id"] for c in r["candidates"]}
    same_day = x835([{"claim_id": uid("X"), "billed": "4321.09", "paid": "500"}])
    [r] = (await intake.post("/v1/remittances", content=same_day, headers=X12)).json()["results"]
    assert r["result"] == "matched" and r["applied_as"] == "initial_payment" and r["matched_claim_id"] == cid
    # the initial payment is known now: money matched this way waits for a person
    later = x835([{"claim_id": uid("X"), "billed": "4321.09", "paid": "900", "pccn": "LATER"}])
    [r] = (await intake.post("/v1/remittances", content=later, headers=X12)).json()["results"]
    assert r["result"] == "review" and r.get("applied_as") is None
