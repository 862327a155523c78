"""API models of the integration endpoints (files, batches, the remittance review list)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal[
    "accepted", "duplicate", "rejected", "matched", "unmatched", "ambiguous", "not_candidate", "review"
]


class ClaimOutcome(BaseModel):
    """One claim of a file or batch: ``accepted`` (a claim event), ``duplicate`` (seen before),
    ``rejected`` (with the reason), or for a remittance claim ``matched`` (applied to a tracked
    claim: see ``applied_as``), ``unmatched``/``ambiguous``/``review`` (in the review list, with its
    candidates) or ``not_candidate`` (Medicare/Medicaid: kept, not started)."""

    index: int
    claim_id: str
    result: Outcome
    reason: str | None = None
    problem: str | None = None
    errors: list[dict[str, str]] | None = None
    event_id: str | None = None
    event_sequence: int | None = None
    remittance_id: int | None = None
    matched_claim_id: str | None = None
    applied_as: Literal["initial_payment", "payment"] | None = None
    payer_claim_control_number: str | None = None
    nsa_remark_codes: list[str] | None = None
    candidates: list[dict[str, Any]] | None = None
    first_result: str | None = None


class WarningOut(BaseModel):
    code: str
    message: str
    location: str | None = None
    segment: int | None = None


class FileAccepted(BaseModel):
    file_id: int
    sha256: str
    format: Literal["x12-835", "x12-837", "fhir-eob", "json"]
    received_on: date = Field(
        description="the day the file arrived (business time zone): an 835's receipt date"
    )
    duplicate_file: bool = Field(
        description="the same file was posted before; its first answer, each claim 'duplicate'"
    )
    summary: dict[str, int]
    results: list[ClaimOutcome]
    warnings: list[WarningOut]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claims: list[Any] = Field(
        min_length=1,
        max_length=1000,
        description="canonical claims (the body of POST /v1/claims), each validated and accepted on its own",
    )


class BatchAccepted(BaseModel):
    summary: dict[str, int]
    results: list[ClaimOutcome]


class ApplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claim_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="the tracked claim it pays"
    )


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$", description="why")


class RemittanceOut(BaseModel):
    id: int
    file_id: int
    source: str
    state: str
    claim_ref: str = Field(description="CLP01, the patient control number (the provider's claim id)")
    payer_claim_control_number: str | None
    status_code: str | None
    reversal: bool
    claim_filing_indicator: str | None
    payer_name: str | None
    payee_npi: str | None
    payee_tin: str | None
    charge_amount: Decimal | None
    paid_amount: Decimal | None
    cost_sharing: Decimal | None
    payment_date: date | None
    trace_number: str | None
    received_on: date
    nsa_remark_codes: list[str]
    claim_id: str | None
    applied_as: str | None
    candidates: list[dict[str, Any]]
    reason: str | None
    event_id: UUID | None = Field(description="the claim event or payment event it became, once applied")
    created_at: datetime


EXAMPLE_835 = (
    "ISA*00*          *00*          *ZZ*ACMEHEALTH     *ZZ*METROEM        *261105*1200*^*00501*"
    "000000101*0*P*:~"
    "GS*HP*ACMEHEALTH*METROEM*20261105*1200*101*X*005010X221A1~ST*835*0001~"
    "BPR*I*350*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999999999*DA*654321*20261105~"
    "TRN*1*EFT0001*1512345678~DTM*405*20261104~N1*PR*ACME HEALTH PLAN~N1*PE*METRO EMERGENCY*XX*1234567893~"
    "LX*1~CLP*CLM-1001*1*2400*350*0*12*PCN0001*23~CAS*CO*45*2050~SVC*HC:99285*2400*350~DTM*472*20260928~"
    "SE*13*0001~GE*1*101~IEA*1*000000101~"
)
EXAMPLE_837 = (
    "ISA*00*          *00*          *ZZ*METROEM        *ZZ*ACMEHEALTH     *260930*1200*^*00501*"
    "000000201*0*P*:~"
    "GS*HC*METROEM*ACMEHEALTH*20260930*1200*201*X*005010X222A1~ST*837*0001*005010X222A1~"
    "BHT*0019*00*B1*20260930*1200*CH~NM1*41*2*METRO EMERGENCY*****46*METRO1~NM1*40*2*ACME*****46*ACME~"
    "HL*1**20*1~NM1*85*2*METRO EMERGENCY PHYSICIANS*****XX*1234567893~REF*EI*123456789~"
    "HL*2*1*22*0~SBR*P*18*******CI~NM1*PR*2*ACME HEALTH PLAN*****PI*ACME~"
    "CLM*CLM-1002*2400***23:B:1*Y*A*Y*Y~LX*1~SV1*HC:99285*2400*UN*1***1~DTP*472*D8*20260928~"
    "SE*14*0001~GE*1*201~IEA*1*000000201~"
)
EXAMPLE_EOB: dict[str, Any] = {
    "resourceType": "ExplanationOfBenefit",
    "id": "CLM-1001",
    "status": "active",
    "type": {"coding": [{"code": "professional"}]},
    "use": "claim",
    "created": "2026-11-04",
    "insurer": {"display": "Acme Health Plan"},
    "provider": {"identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}},
    "outcome": "complete",
    "item": [
        {
            "sequence": 1,
            "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99285"}]},
            "servicedDate": "2026-09-28",
            "adjudication": [
                {
                    "category": {"coding": [{"code": "submitted"}]},
                    "amount": {"value": 2400, "currency": "USD"},
                },
                {"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 350, "currency": "USD"}},
            ],
        }
    ],
    "payment": {"date": "2026-11-05", "amount": {"value": 350, "currency": "USD"}},
}
