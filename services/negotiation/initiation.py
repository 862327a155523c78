"""The Notice of IDR Initiation as a modelled document (45 CFR 149.510(b)(2)(iii); idr-rules 5.3;
audit 2026-11 row 21): its required contents are checked before initiation, each missing one named,
and it is rendered like the open negotiation notice (HTML and PDF with the PDF's SHA-256).

CMS lists wrong contacts, a missing QPA and no proof of open negotiation among the common reasons
IDR entities close disputes; this catches them before the portal does."""

from __future__ import annotations

import base64
import hashlib
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from services.negotiation.schemas import Sender
from shared.events import ClaimAdjudicated
from shared.http import Problem


class InitiationNoticeRequest(BaseModel):
    """What the initiating party adds to the claim's facts for the Notice of IDR Initiation."""

    model_config = ConfigDict(extra="forbid")
    initiating_party: Sender
    other_party_name: str = Field(min_length=1, max_length=200, description="the plan or issuer")
    other_party_email: EmailStr
    preferred_entity: str | None = Field(default=None, max_length=200, description="the preferred IDR entity")
    attestation: bool = Field(
        description="the items are qualified IDR items or services within the scope of the process"
    )


class InitiationNoticeOut(BaseModel):
    content: dict[str, Any]
    html: str
    pdf_base64: str
    pdf_sha256: str


def initiation_content(
    facts: ClaimAdjudicated, open_negotiation_started_on: date | None, req: InitiationNoticeRequest
) -> dict[str, Any]:
    """The notice's contents, or a 422 problem naming every required item that is missing."""
    errors: list[dict[str, str]] = []
    if open_negotiation_started_on is None:
        errors.append(
            {"field": "open_negotiation_started_on", "reason": "the open negotiation start is required"}
        )
    for line in facts.lines:
        if line.qpa is None:
            errors.append(
                {"field": f"lines[{line.line_number - 1}].qpa", "reason": "the QPA of every item is required"}
            )
    if not req.attestation:
        errors.append(
            {"field": "attestation", "reason": "the attestation that the items are qualified is required"}
        )
    if not (req.initiating_party.email or req.initiating_party.phone):
        errors.append({"field": "initiating_party", "reason": "an email or a phone number is required"})
    if errors:
        raise Problem(
            422,
            "initiation-notice-incomplete",
            "The Notice of IDR Initiation is missing required contents",
            "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
            errors=errors,
        )
    assert open_negotiation_started_on is not None
    return {
        "claim_id": facts.claim_id,
        "plan_type": facts.plan_type,
        "state": facts.state,
        "service_category": facts.service_category.replace("_", " "),
        "open_negotiation_started_on": open_negotiation_started_on.isoformat(),
        "initiating_party": req.initiating_party.model_dump(mode="json"),
        "provider": {"name": facts.provider_name, "npi": facts.provider_npi, "tin": facts.provider_tin},
        "other_party": {"name": req.other_party_name, "email": str(req.other_party_email)},
        "preferred_entity": req.preferred_entity,
        "attestation": req.attestation,
        "lines": [
            {
                "line_number": line.line_number,
                "service_date": line.service_date.isoformat(),
                "code": f"{line.code_system} {line.service_code}",
                "qpa": f"{line.qpa:.2f}",
                "paid": f"{line.paid:.2f}",
            }
            for line in facts.lines
        ],
    }


def render_initiation(content: dict[str, Any]) -> InitiationNoticeOut:
    from services.negotiation.service import render_html, render_pdf

    html = render_html(content, "initiation.html.j2")
    pdf = render_pdf(html)
    return InitiationNoticeOut(
        content=content,
        html=html,
        pdf_base64=base64.b64encode(pdf).decode(),
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
    )
