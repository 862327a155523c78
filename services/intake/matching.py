"""An 835 claim (or FHIR EOB) against the claims idrflow tracks: found, applied, or kept for review.

Matching, most certain first: the payer claim control number of a remittance already matched; the
patient control number (CLP01 is the provider's own claim id, CLM01 of the 837), checked against the
provider; else the provider (NPI or TIN), payer and billed amount. One claim found is a match;
several are ``ambiguous``; none is ``unmatched``; Medicare and Medicaid remits are
``not_candidate``. Nothing is dropped: every remittance claim is a row, and the unmatched and
ambiguous ones are the review list, with their candidates.

A match is applied by what the claim still lacks: its initial payment or denial (the claim's next
event, receipt date = the day the file arrived: the open negotiation clock starts), or, once that is
known, a payment toward an award or settlement (``RemittancePayment``, applied by the dispute
service as the claim's ``payment-received`` action). A reversal (status 22) is kept for a person.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.batch import accept_many
from services.intake.conversion import PUBLIC_PROGRAMS, Unusable, initial_payment_event
from services.intake.formats import ParsedClaim
from services.intake.models import claim_lines, claims, outbox, remittance_claims
from shared.events import Envelope, RemittancePayment, deterministic_event_id
from shared.kafka.outbox import add_to_outbox

REVIEW_STATES = ("unmatched", "ambiguous", "review")  # the review list; dismissed ones leave it


@dataclass
class Match:
    state: str  # matched | unmatched | ambiguous | not_candidate | review
    claim_id: str | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    certain: bool = True  # by an identifier; False: by provider, payer and amount only


@dataclass
class Applied:
    state: str
    applied_as: str | None
    reason: str | None
    event_id: uuid.UUID | None = None


CENT = Decimal("0.01")
LIMIT = Decimal("9999999999.99")  # Numeric(12, 2)


def money_fits(value: Decimal | None) -> bool:
    """A finite amount with at most two decimals that the claim record can hold."""
    return value is None or (value.is_finite() and abs(value) <= LIMIT and value == value.quantize(CENT))


def _amount(value: Decimal | None) -> str:
    if value is None:
        return ""
    return str(value.quantize(CENT)) if money_fits(value) else str(value)


def natural_key(source: str, c: ParsedClaim) -> str:
    """The same remittance claim in another file (a re-sent ERA, amounts written 350 or 350.00) has
    the same key: a SHA-256 of its payer, trace, payer claim number, patient control number,
    status and amounts."""
    parts = (
        source,
        (c.payer_id or c.payer_name or "").strip().lower(),
        c.payment_trace_number or "",
        c.payer_claim_control_number or "",
        c.claim_id,
        c.status or "",
        _amount(c.charge_amount),
        _amount(c.paid_amount),
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _candidate(row: Any) -> dict[str, Any]:
    return {
        "claim_id": row.claim_id,
        "payer_name": row.payer_name,
        "provider_npi": row.provider_npi,
        "billed": str(row.billed_total) if row.billed_total is not None else None,
        "initial_payment_received_on": (
            row.initial_payment_received_on.isoformat() if row.initial_payment_received_on else None
        ),
    }


async def find(session: AsyncSession, tenant_id: str, c: ParsedClaim) -> Match:
    if c.claim_filing_indicator in PUBLIC_PROGRAMS:
        return Match(
            "not_candidate",
            reason=f"a {PUBLIC_PROGRAMS[c.claim_filing_indicator]} remit (CLP06 {c.claim_filing_indicator}): "
            "the federal IDR process does not apply",
        )
    mine = claims.c.tenant_id == tenant_id
    columns = (
        claims.c.claim_id,
        claims.c.payer_name,
        claims.c.provider_npi,
        claims.c.provider_tin,
        claims.c.initial_payment_received_on,
        claims.c.billed_total,
    )
    same = (await session.execute(select(*columns).where(mine, claims.c.claim_id == c.claim_id))).first()
    if same is not None:
        npi_differs = c.payee_npi is not None and c.payee_npi != same.provider_npi
        tin_differs = c.payee_tin is not None and c.payee_tin != same.provider_tin
        if (
            (npi_differs or c.payee_npi is None)
            and (tin_differs or c.payee_tin is None)
            and (npi_differs or tin_differs)
        ):
            return Match(
                "review",
                candidates=[_candidate(same)],
                reason="the patient control number is a tracked claim's, but the payee is another provider",
            )
        return Match("matched", same.claim_id, reason="the patient control number (CLP01)")
    if c.payer_claim_control_number and c.payer_name:
        # the same payer's claim number on an earlier remittance of this provider (a later payment
        # whose patient control number was re-keyed); another payer's number means nothing here
        r = remittance_claims.c
        earlier = select(r.claim_id).where(
            r.tenant_id == tenant_id,
            r.payer_claim_control_number == c.payer_claim_control_number,
            func.lower(r.payer_name) == c.payer_name.lower(),
            r.state == "matched",
            r.claim_id.is_not(None),
        )
        if c.payee_npi:
            earlier = earlier.where(r.payee_npi == c.payee_npi)
        found = sorted({row.claim_id for row in (await session.execute(earlier.limit(5))).all()})
        if len(found) == 1:
            return Match(
                "matched", found[0], reason="this payer's claim control number on an earlier remittance"
            )
    provider = []
    if c.payee_npi:
        provider.append(claims.c.provider_npi == c.payee_npi)
    if c.payee_tin:
        provider.append(claims.c.provider_tin == c.payee_tin)
    if not provider:
        return Match(
            "unmatched", reason="no claim has this patient control number, and the payee has no NPI or TIN"
        )
    nearby = select(*columns).where(mine, or_(*provider))
    if c.payer_name:
        nearby = nearby.where(func.lower(claims.c.payer_name) == c.payer_name.lower())
    exact: list[Any] = []
    if c.charge_amount is not None and money_fits(c.charge_amount):
        exact = list(
            (await session.execute(nearby.where(claims.c.billed_total == c.charge_amount).limit(11))).all()
        )
    if len(exact) == 1:
        return Match(
            "matched",
            exact[0].claim_id,
            candidates=[_candidate(exact[0])],
            reason="the provider, payer and billed amount",
            certain=False,
        )
    if len(exact) > 1:
        return Match(
            "ambiguous",
            candidates=[_candidate(r) for r in exact[:10]],
            reason=f"several claims of this provider and payer have the billed amount {c.charge_amount}",
        )
    hints = nearby
    if c.charge_amount is not None and money_fits(c.charge_amount):  # the closest amounts first
        hints = hints.order_by(func.abs(func.coalesce(claims.c.billed_total, 0) - c.charge_amount))
    rows = (await session.execute(hints.order_by(claims.c.claim_id).limit(5))).all()
    return Match(
        "unmatched",
        candidates=[_candidate(r) for r in rows],
        reason="no tracked claim has this patient control number, or this provider, payer and billed amount",
    )


async def apply(
    session: AsyncSession,
    tenant_id: str,
    remittance_id: int,
    c: ParsedClaim,
    claim_id: str,
    received_on: date,
    source: str,
    applied_in_file: set[str] | None = None,
    certain: bool = True,
) -> Applied:
    """Apply a matched remittance claim to ``claim_id`` in the caller's transaction.
    ``applied_in_file``: the claims an earlier claim of the same file was applied to."""
    stored = (
        await session.execute(
            select(claims).where(claims.c.tenant_id == tenant_id, claims.c.claim_id == claim_id)
        )
    ).first()
    if stored is None:
        return Applied("unmatched", None, f"claim {claim_id!r} is not tracked")
    if c.reversal:
        return Applied(
            "review",
            None,
            "a reversal (CLP02 22) of an earlier payment: check the claim's payments, record the "
            "correction, then dismiss this remittance",
        )
    if applied_in_file and claim_id in applied_in_file:
        return Applied(
            "review",
            None,
            f"another claim of this file was already applied to claim {claim_id} (a correction after "
            "a reversal?): a person decides",
        )
    if not (money_fits(c.paid_amount) and money_fits(c.charge_amount)):
        return Applied("review", None, "an amount is not money with at most two decimals: check the file")
    if not certain:
        # found by provider, payer and amount only: good enough to start a claim's clock when a
        # service date agrees too; a payment (money toward an award) needs a person to confirm
        served = {
            d
            for d in (
                await session.execute(
                    select(claim_lines.c.service_date).where(
                        claim_lines.c.tenant_id == tenant_id, claim_lines.c.claim_id == claim_id
                    )
                )
            ).scalars()
        }
        dates = {line.service_date for line in c.service_lines if line.service_date is not None}
        if stored.initial_payment_received_on is not None or not (dates & served):
            return Applied(
                "review",
                None,
                f"claim {claim_id} has this provider, payer and billed amount, but no identifier "
                "(or service date) ties them: confirm with POST /v1/remittances/{id}/apply",
            )
    if stored.initial_payment_received_on is None:
        lines = (
            await session.execute(
                select(claim_lines)
                .where(claim_lines.c.tenant_id == tenant_id, claim_lines.c.claim_id == claim_id)
                .order_by(claim_lines.c.line_number)
            )
        ).all()
        try:
            event = initial_payment_event(stored, list(lines), c, received_on)
        except Unusable as exc:
            return Applied("review", None, f"the initial payment cannot be recorded: {exc}")
        [result] = await accept_many(tenant_id, [(event, f"remittance:{remittance_id}")], session=session)
        if result.result == "rejected":
            return Applied("review", None, result.reason)
        what = "denial" if (c.paid_amount or Decimal(0)) == 0 else "initial payment"
        return Applied(
            "matched",
            "initial_payment",
            f"the {what} of claim {claim_id}, received {received_on.isoformat()}: "
            "the open negotiation clock starts",
            uuid.UUID(str(result.body["event_id"])),
        )
    amount = c.paid_amount or Decimal(0)
    if amount <= 0:
        return Applied(
            "review",
            None,
            f"no payment ({amount}) for a claim whose initial payment is known "
            f"({stored.initial_payment_received_on.isoformat()}): a re-adjudication or a take-back",
        )
    if c.payer_claim_control_number:
        r = remittance_claims.c
        initial = await session.execute(
            select(r.id).where(
                r.tenant_id == tenant_id,
                r.claim_id == claim_id,
                r.applied_as == "initial_payment",
                r.payer_claim_control_number == c.payer_claim_control_number,
                r.id != remittance_id,
            )
        )
        if initial.first() is not None:
            return Applied(
                "review",
                None,
                "the payer re-adjudicated the claim of its initial payment (same claim control "
                "number): record the corrected initial payment, then dismiss this remittance",
            )
    paid_on = c.payment_date or received_on
    reference = (
        "/".join(x for x in (c.payment_trace_number, c.payer_claim_control_number) if x)
        or f"remittance {remittance_id}"
    )
    event_id = deterministic_event_id("intake", tenant_id, "remittance", str(remittance_id))
    envelope = Envelope.wrap(
        RemittancePayment(
            remittance_id=remittance_id,
            amount=amount,
            paid_on=paid_on,
            reference=reference[:200],
            source="fhir-eob" if source == "fhir-eob" else "835",
        ),
        tenant_id=tenant_id,
        claim_id=claim_id,
        event_id=event_id,
    )
    await add_to_outbox(session, outbox, envelope)
    return Applied(
        "matched",
        "payment",
        f"a payment of {amount} on {paid_on.isoformat()} toward claim {claim_id} (award or settlement)",
        event_id,
    )
