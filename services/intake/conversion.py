"""From what a file says to idrflow's canonical claim.

An 837 says who billed whom for what and when the bill was made; it does not say the plan type
(beyond Medicare/Medicaid filing indicators), whether the service was an emergency (beyond the
place of service or an emergency-room revenue code) or the state whose law applies. What the file
cannot say comes from the ingest profile (query parameters of the endpoint, options of
``idrflow ingest``); a claim for which neither says it is rejected with the field and the reason.

A matched 835 (or EOB) that brings the initial payment or denial of a tracked claim becomes the
claim's next event: the stored facts, with the receipt date (the day the file arrived) and each
line's paid amount and patient cost sharing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from services.intake.formats import ParsedClaim, ServiceLine
from services.intake.schemas import ClaimIn

# SBR09 / CLP06 claim filing indicators of programs the federal IDR process does not cover
PUBLIC_PROGRAMS = {"MA": "medicare", "MB": "medicare", "16": "medicare_advantage", "MC": "medicaid"}
FILING_PLAN_TYPES = {**PUBLIC_PROGRAMS, "FI": "fehb"}
PLACE_OF_SERVICE = {"23": "emergency", "41": "ground_ambulance", "42": "air_ambulance"}
CODE = re.compile(r"^[A-Z0-9]{5}$")


@dataclass(frozen=True)
class Profile:
    """What a file does not say, for every claim in it."""

    source_system: str | None = None
    plan_type: str | None = None
    service_category: str | None = None
    state: str | None = None


class Unusable(ValueError):
    """The claim cannot become a canonical claim; ``errors`` name each field and reason."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))


def errors_of(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for e in exc.errors():
        where = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in e["loc"]).replace(".[", "[")
        out.append({"field": where or "body", "reason": str(e["msg"])})
    return out


def _code(line: ServiceLine) -> tuple[str, str] | None:
    code = (line.procedure_code or "").upper()
    if line.code_qualifier not in (None, "HC") or not CODE.match(code):
        return None
    return code, "CPT" if code[0].isdigit() else "HCPCS"


def _category(claim: ParsedClaim) -> str | None:
    if claim.place_of_service in PLACE_OF_SERVICE:
        return PLACE_OF_SERVICE[claim.place_of_service]
    if any((line.revenue_code or "").startswith("045") for line in claim.service_lines):
        return "emergency"  # 0450-0459: emergency room
    return None


def claim_from_837(claim: ParsedClaim, profile: Profile) -> ClaimIn:
    """The canonical claim of one 837 claim, awaiting its initial payment (``bill_sent_on`` set)."""
    errors: list[dict[str, str]] = []
    plan_type = FILING_PLAN_TYPES.get(claim.claim_filing_indicator or "") or profile.plan_type
    if plan_type is None:
        errors.append(
            {
                "field": "payer.plan_type",
                "reason": f"the 837 does not say it (SBR09 {claim.claim_filing_indicator or 'absent'}); "
                "pass plan_type",
            }
        )
    category = _category(claim) or profile.service_category
    if category is None:
        errors.append(
            {
                "field": "service_category",
                "reason": "the 837 shows no emergency (place of service 23, revenue code 045x) or ambulance "
                "(41, 42); pass service_category",
            }
        )
    if profile.state is None:
        errors.append({"field": "state", "reason": "an 837 does not say whose law applies; pass state"})
    lines: list[dict[str, Any]] = []
    for line in claim.service_lines:
        coded = _code(line)
        if coded is None:
            continue  # a revenue-code-only institutional line: no CPT/HCPCS to dispute
        lines.append(
            {
                "service_code": coded[0],
                "code_system": coded[1],
                "service_date": line.service_date or claim.statement_from,
                "billed": line.charge_amount,
                "paid": Decimal("0.00"),
            }
        )
    if not lines:
        errors.append({"field": "lines", "reason": "no service line with a CPT or HCPCS code (SV1/SV2 HC)"})
    if claim.bill_sent_date is None:
        errors.append(
            {"field": "bill_sent_on", "reason": "no BHT04, DTP*050, GS04 or ISA09 date in the file"}
        )
    if errors:
        raise Unusable(errors)
    body = {
        "claim_id": claim.claim_id,
        "source_system": profile.source_system or "x12-837",
        "payer": {"name": claim.payer_name or "", "plan_type": plan_type},
        "provider": {"npi": claim.payee_npi, "tin": claim.payee_tin, "name": claim.payee_name or ""},
        "service_category": category,
        "state": profile.state,
        "bill_sent_on": claim.bill_sent_date,
        "lines": lines,
    }
    try:
        return ClaimIn.model_validate(body)
    except ValidationError as exc:
        raise Unusable(errors_of(exc)) from None


def _paid_lines(stored: list[Any], remit: ParsedClaim) -> list[dict[str, Any]]:
    """Each stored line with the 835's paid amount and cost sharing: by code and service date, then
    by code; a claim of one line takes the remittance claim's totals when its line cannot be found."""
    pool = list(remit.service_lines)
    out = []
    for row in stored:
        line = {
            "service_code": row.service_code,
            "code_system": row.code_system,
            "service_date": row.service_date,
            "billed": row.billed,
            "paid": row.paid,
            "qpa": row.qpa,
            "cost_sharing": row.cost_sharing,
        }
        found = next(
            (
                s
                for s in pool
                if (s.procedure_code or "").upper() == row.service_code and s.service_date == row.service_date
            ),
            None,
        ) or next((s for s in pool if (s.procedure_code or "").upper() == row.service_code), None)
        if found is not None:
            pool.remove(found)
            line["paid"] = found.paid_amount if found.paid_amount is not None else Decimal("0.00")
            if found.cost_sharing is not None:
                line["cost_sharing"] = found.cost_sharing
        elif len(stored) == 1:
            line["paid"] = remit.paid_amount or Decimal("0.00")
        if len(stored) == 1 and remit.cost_sharing is not None:
            # one line: the claim's whole patient responsibility (CAS PR on the claim and its lines)
            line["cost_sharing"] = remit.cost_sharing
        out.append(line)
    return out


def initial_payment_event(stored: Any, lines: list[Any], remit: ParsedClaim, received_on: date) -> ClaimIn:
    """The tracked claim's next event: its initial payment (or denial) arrived on ``received_on``."""
    body = {
        "claim_id": stored.claim_id,
        "source_system": stored.source_system,
        "event_sequence": stored.latest_event_sequence + 1,
        "payer": {
            "name": stored.payer_name,
            "plan_type": stored.plan_type,
            "contact_email": stored.payer_contact_email,
        },
        "provider": {"npi": stored.provider_npi, "tin": stored.provider_tin, "name": stored.provider_name},
        "service_category": stored.service_category,
        "state": stored.state,
        "bill_sent_on": stored.bill_sent_on,
        "initial_payment_received_on": received_on,
        "lines": _paid_lines(lines, remit),
    }
    if stored.patient_name or stored.patient_member_id or stored.patient_date_of_birth:
        body["patient"] = {
            "name": stored.patient_name,
            "member_id": stored.patient_member_id,
            "date_of_birth": stored.patient_date_of_birth,
        }
    try:
        return ClaimIn.model_validate(body)
    except ValidationError as exc:
        raise Unusable(errors_of(exc)) from None
