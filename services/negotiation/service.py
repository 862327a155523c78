"""The open negotiation notice: generated from the claim's facts (no patient data) as HTML and PDF,
stored with its hash, and handed to the notifier through the outbox in the same transaction. One
notice at a time per claim: while one is issued or sent, another needs ``resend``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.dispute.service import tenant_overrides
from services.negotiation.models import notices, outbox
from services.negotiation.schemas import NoticeOut, NoticeRequest
from shared.db import get_engine, unit_of_work
from shared.events import (
    ClaimAdjudicated,
    Envelope,
    OpenNegotiationNoticeDelivered,
    OpenNegotiationNoticeIssued,
    deterministic_event_id,
)
from shared.http import Problem
from shared.kafka.outbox import add_to_outbox
from shared.rules.calendar import Overrides
from shared.rules.deadlines import Triggers, compute_schedule

PLAN_TYPES = {
    "self_insured_erisa": "self-insured ERISA group health plan",
    "fully_insured_group": "fully insured group health plan",
    "individual_market": "individual health insurance coverage",
    "fehb": "FEHB carrier",
    "non_federal_governmental": "non-federal governmental plan",
    "church_plan": "church plan",
}

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html", "html.j2"]),
)


def _money(v: Decimal) -> str:
    return f"{v:,.2f}"


def notice_content(
    facts: ClaimAdjudicated,
    req: NoticeRequest,
    recipient: str,
    notice_id: uuid.UUID,
    issued_on: date,
    overrides: Overrides | None = None,
) -> dict[str, Any]:
    """What the notice says, as data (also stored): items, offer, dates, contacts."""
    lines = {line.line_number: line for line in facts.lines}
    missing = sorted(set(lines) - set(req.offer))
    unknown = sorted(set(req.offer) - set(lines))
    if missing or unknown:
        reason = (
            f"an offer is needed for every line {sorted(lines)}"
            if missing
            else f"no line(s) {unknown} on this claim"
        )
        raise Problem(422, "validation-error", "The request is not valid", reason, field="offer")
    # the tenant's closures count here as they do for the claim's own deadlines (audit row 20)
    schedule = compute_schedule(
        Triggers(open_negotiation_started_on=issued_on, state=facts.state), overrides=overrides
    ).deadlines
    return {
        "notice_id": str(notice_id),
        "issued_on": issued_on.isoformat(),
        "claim_id": facts.claim_id,
        "payer_name": facts.payer_name,
        "plan_type_label": PLAN_TYPES.get(facts.plan_type, facts.plan_type),
        "recipient": recipient,
        "provider_name": facts.provider_name,
        "provider_npi": facts.provider_npi,
        "provider_tin": facts.provider_tin,
        "sender_name": req.sender.name,
        "sender_email": req.sender.email,
        "sender_phone": req.sender.phone,
        "service_category": facts.service_category.replace("_", " "),
        "state": facts.state,
        "initial_payment_received_on": str(facts.initial_payment_received_on or ""),
        # $0 paid is a denial or an allowed amount applied to the patient's cost sharing: say what is known
        "zero_paid": any(line.paid == 0 for line in facts.lines),
        "lines": [
            {
                "line_number": n,
                "service_date": line.service_date.isoformat(),
                "code_system": line.code_system,
                "service_code": line.service_code,
                "billed": _money(line.billed),
                "paid": _money(line.paid),
                "cost_sharing": _money(line.cost_sharing) if line.cost_sharing else None,
                "qpa": _money(line.qpa) if line.qpa is not None else None,
                "offer": _money(req.offer[n]),
            }
            for n, line in sorted(lines.items())
        ],
        "total_offer": _money(sum(req.offer.values(), Decimal(0))),
        "period_end": schedule["open_negotiation_period_end"].due_on.isoformat(),
        "window_opens": schedule["idr_initiation_window_opens"].due_on.isoformat(),
        "window_closes": schedule["idr_initiation_deadline"].due_on.isoformat(),
        "rule_2026": "open_negotiation_response_deadline" in schedule,
        "registration_number": req.registration_number,
    }


def render_html(content: dict[str, Any], template: str = "notice.html.j2") -> str:
    return _templates.get_template(template).render(content)


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML

    pdf: bytes = HTML(string=html).write_pdf()
    return pdf


def _out(row: Any) -> NoticeOut:
    return NoticeOut.model_validate(dict(row._mapping))


ACTIVE = ("issued", "sent")


def _lock_key(tenant_id: str, claim_id: str) -> int:
    """A PostgreSQL advisory lock id for the claim's notices (a signed 64-bit integer)."""
    digest = hashlib.sha256(f"notice\x00{tenant_id}\x00{claim_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _refuse_if_out(
    session: AsyncSession, tenant_id: str, claim_id: str, req: NoticeRequest, notice_id: uuid.UUID
) -> None:
    """A 409 naming the claim's notice that is issued or sent, unless the request says ``resend``."""
    if req.resend:
        return
    row = (
        await session.execute(
            select(notices.c.notice_id, notices.c.status)
            .where(
                notices.c.tenant_id == tenant_id,
                notices.c.claim_id == claim_id,
                notices.c.status.in_(ACTIVE),
                notices.c.notice_id != notice_id,
            )
            .order_by(notices.c.created_at.desc())
            .limit(1)
        )
    ).first()
    if row is not None:
        reason = f'notice {row.notice_id} for this claim is {row.status}; send "resend": true for another'
        raise Problem(
            409,
            "notice-exists",
            "A notice for this claim is already out",
            f"Notice {row.notice_id} for claim {claim_id} is {row.status}; "
            'send "resend": true to issue another one.',
            errors=[{"field": "resend", "reason": reason, "notice_id": str(row.notice_id)}],
        )


async def find_notice(
    tenant_id: str, notice_id: uuid.UUID, engine: AsyncEngine | None = None
) -> NoticeOut | None:
    async with (engine or get_engine()).connect() as conn:
        row = (
            await conn.execute(
                select(notices).where(notices.c.tenant_id == tenant_id, notices.c.notice_id == notice_id)
            )
        ).first()
    return _out(row) if row is not None else None


async def issue_notice(
    tenant_id: str,
    facts: ClaimAdjudicated,
    req: NoticeRequest,
    engine: AsyncEngine | None = None,
    *,
    notice_id: uuid.UUID | None = None,
) -> NoticeOut:
    """Issue the notice ``notice_id`` (new if not given); if it exists already (a retried request),
    that one is the answer and nothing is sent again."""
    recipient = str(req.recipient or facts.payer_contact_email or "")
    if not recipient:
        raise Problem(
            422,
            "validation-error",
            "No recipient",
            "The claim has no payer contact email: give 'recipient'.",
            field="recipient",
        )
    notice_id = notice_id or uuid.uuid4()
    async with unit_of_work(engine) as session:  # refuse before the PDF work, again under the lock
        await _refuse_if_out(session, tenant_id, facts.claim_id, req, notice_id)
    issued_on = datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).date()
    content = notice_content(facts, req, recipient, notice_id, issued_on, await tenant_overrides(tenant_id))
    html = render_html(content)
    pdf = await asyncio.to_thread(render_pdf, html)  # CPU work off the event loop
    digest = hashlib.sha256(pdf).hexdigest()
    event = OpenNegotiationNoticeIssued(
        notice_id=notice_id,
        recipient=recipient,
        subject=f"Open Negotiation Notice: claim {facts.claim_id}, {facts.provider_name}",
        html=html,
        pdf_base64=base64.b64encode(pdf).decode(),
        pdf_sha256=digest,
    )
    async with unit_of_work(engine) as session:
        await session.execute(select(func.pg_advisory_xact_lock(_lock_key(tenant_id, facts.claim_id))))
        mine = notices.c.tenant_id == tenant_id, notices.c.notice_id == notice_id
        existing = (await session.execute(select(notices).where(*mine))).first()
        if existing is not None:
            return _out(existing)
        await _refuse_if_out(session, tenant_id, facts.claim_id, req, notice_id)
        await session.execute(
            notices.insert().values(
                notice_id=notice_id,
                tenant_id=tenant_id,
                claim_id=facts.claim_id,
                recipient=recipient,
                content=content,
                html=html,
                pdf=pdf,
                pdf_sha256=digest,
            )
        )
        envelope = Envelope.wrap(
            event,
            tenant_id=tenant_id,
            claim_id=facts.claim_id,
            event_id=deterministic_event_id(str(notice_id)),
        )
        await add_to_outbox(session, outbox, envelope)
        row = (await session.execute(select(notices).where(notices.c.notice_id == notice_id))).one()
    return _out(row)


async def list_notices(tenant_id: str, claim_id: str, engine: AsyncEngine | None = None) -> list[NoticeOut]:
    async with (engine or get_engine()).connect() as conn:
        rows = (
            await conn.execute(
                select(notices)
                .where(notices.c.tenant_id == tenant_id, notices.c.claim_id == claim_id)
                .order_by(notices.c.created_at)
            )
        ).all()
    return [_out(r) for r in rows]


async def notice_document(tenant_id: str, notice_id: uuid.UUID, engine: AsyncEngine | None = None) -> Any:
    async with (engine or get_engine()).connect() as conn:
        row = (
            await conn.execute(
                select(notices).where(notices.c.tenant_id == tenant_id, notices.c.notice_id == notice_id)
            )
        ).first()
    if row is None:
        raise Problem(
            404, "notice-not-found", "Notice not found", f"No notice {notice_id}", field="notice_id"
        )
    return row


async def record_delivery(
    session: AsyncSession, tenant_id: str, proof: OpenNegotiationNoticeDelivered
) -> None:
    await session.execute(
        update(notices)
        # a notice that went out stays sent: a failure proof arriving after it changes nothing
        .where(
            notices.c.tenant_id == tenant_id,
            notices.c.notice_id == proof.notice_id,
            notices.c.status.is_distinct_from("sent"),
        )
        .values(status=proof.status, message_id=proof.message_id, sent_at=proof.sent_at, detail=proof.detail)
    )
