"""The canonical idrflow claim JSON (the intake API's ``ClaimIn``), one object or a list, passed
through: validated by the same model the HTTP API uses, and also described as ``ParsedClaim``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from services.intake.schemas import ClaimIn

from .model import ParsedClaim, ParseError, ParseResult, ServiceLine


def looks_canonical(doc: Any) -> bool:
    first = doc[0] if isinstance(doc, list) and doc else doc
    return isinstance(first, dict) and "claim_id" in first and ("lines" in first or "provider" in first)


def _parsed(claim: ClaimIn) -> ParsedClaim:
    shares = [ln.cost_sharing for ln in claim.lines if ln.cost_sharing is not None]
    return ParsedClaim(
        claim_id=claim.claim_id,
        payer_name=claim.payer.name,
        payee_name=claim.provider.name,
        payee_npi=claim.provider.npi,
        payee_tin=claim.provider.tin,
        payee_id=claim.provider.npi,
        payee_id_qualifier="XX",
        charge_amount=sum((ln.billed for ln in claim.lines), Decimal(0)),
        paid_amount=sum((ln.paid for ln in claim.lines), Decimal(0)),
        cost_sharing=sum(shares, Decimal(0)) if shares else None,
        payment_date=claim.initial_payment_received_on,
        bill_sent_date=claim.bill_sent_on,
        bill_sent_date_source="bill_sent_on" if claim.bill_sent_on else None,
        service_lines=[
            ServiceLine(
                line_number=k + 1,
                procedure_code=ln.service_code,
                code_qualifier=ln.code_system,
                charge_amount=ln.billed,
                paid_amount=ln.paid,
                service_date=ln.service_date,
                cost_sharing=ln.cost_sharing,
            )
            for k, ln in enumerate(claim.lines)
        ],
    )


def parse_canonical(doc: Any) -> ParseResult:
    items = doc if isinstance(doc, list) else [doc]
    result = ParseResult(format="json")
    for i, item in enumerate(items):
        where = f"$[{i}]" if isinstance(doc, list) else "$"
        try:
            claim = ClaimIn.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            raise ParseError(message, f"{where}.{field}" if field else where) from None
        result.canonical.append(claim)
        result.claims.append(_parsed(claim))
    if not result.claims:
        raise ParseError("an empty list: no claims", "$")
    return result
