"""The parse result: what every format (X12 835, X12 837, FHIR EOB, canonical JSON) is read into.

Plain slotted dataclasses, not pydantic models: an 835 of 20,000 claims builds about 200,000 of
these objects and validation would cost more than the parsing. The parsers validate what they read
(amounts are finite ``Decimal``, dates are real dates) and report what they could not read as
``ParseWarning`` entries instead of failing. ``to_jsonable`` turns a result into plain JSON types
(money as decimal strings, dates as ISO strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

Format = Literal["x12-835", "x12-837", "fhir-eob", "json"]


class ParseError(ValueError):
    """The input cannot be read at all. ``location`` names the segment or field, when there is one."""

    def __init__(self, message: str, location: str | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


@dataclass(slots=True)
class ParseWarning:
    """Something the parser read around, guessed or left out. ``code`` is stable (tests and the API
    key on it), ``message`` is for people and never holds a patient's name, member id or birth date.
    ``location`` names the place: ``segment 14 (BPR) BPR16`` for X12, a JSON path for FHIR and JSON;
    ``segment`` is the 1-based X12 segment number in the file, when there is one."""

    code: str
    message: str
    location: str | None = None
    segment: int | None = None


@dataclass(slots=True)
class Adjustment:
    """One CAS triplet (or a FHIR adjudication that reduced the payment)."""

    group: str  # CO contractual, PR patient responsibility, OA other, PI payer initiated, CR correction
    reason: str  # CARC
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(slots=True)
class Repricing:
    """837 HCP: what a repricer (often the OON pricing vendor) did with the claim or line."""

    pricing_methodology: str | None = None  # HCP01, e.g. 00 zero pricing, 10 other, 11 usual & customary
    allowed_amount: Decimal | None = None  # HCP02, the repriced allowed amount
    saving_amount: Decimal | None = None  # HCP03
    organization_id: str | None = None  # HCP04
    rate: Decimal | None = None  # HCP05, per diem or flat rate
    reject_reason: str | None = None  # HCP13
    policy_compliance: str | None = None  # HCP14
    exception_code: str | None = None  # HCP15


@dataclass(slots=True)
class ServiceLine:
    line_number: int
    procedure_code: str | None = None
    code_qualifier: str | None = None  # HC (CPT/HCPCS), NU (revenue code), ...
    modifiers: list[str] = field(default_factory=list)
    revenue_code: str | None = None
    charge_amount: Decimal | None = None
    paid_amount: Decimal | None = None  # null on an 837
    allowed_amount: Decimal | None = None  # 835 AMT*B6, FHIR "eligible"
    units: Decimal | None = None
    service_date: date | None = None
    service_date_end: date | None = None
    cost_sharing: Decimal | None = None  # CAS group PR total (FHIR: copay + coinsurance + deductible)
    adjustments: list[Adjustment] = field(default_factory=list)
    remark_codes: list[str] = field(default_factory=list)
    control_number: str | None = None  # REF*6R, ties an 835 line to its 837 line
    repricing: Repricing | None = None


@dataclass(slots=True)
class ProviderAdjustment:
    """835 PLB: money the payer moves at the remittance level, outside any claim."""

    provider_id: str | None
    fiscal_period_date: date | None
    reason: str  # PLB03-1, e.g. WO overpayment recovery, L6 interest, FB forwarding balance
    reference: str | None  # PLB03-2
    amount: Decimal


@dataclass(slots=True)
class Remittance:
    """One 835 transaction (ST..SE): one payment (or notice) from one payer to one payee."""

    index: int
    control_number: str | None = None  # ST02
    version: str | None = None  # GS08 / ST03, e.g. 005010X221A1
    interchange_control_number: str | None = None  # ISA13
    handling_code: str | None = None  # BPR01: I remittance with payment, H notification only, ...
    payment_amount: Decimal | None = None  # BPR02
    credit_debit: str | None = None  # BPR03
    payment_method: str | None = None  # BPR04: ACH, CHK, NON, FWT, BOP
    payment_date: date | None = None
    payment_date_source: str | None = None  # BPR16, BPR15 or DTM405
    production_date: date | None = None  # DTM*405
    trace_number: str | None = None  # TRN02: the check or EFT number
    trace_originator: str | None = None  # TRN03
    payer_name: str | None = None
    payer_id: str | None = None
    payer_id_qualifier: str | None = None
    payee_name: str | None = None
    payee_npi: str | None = None
    payee_tin: str | None = None
    payee_id: str | None = None  # the identifier as sent, whatever its qualifier
    payee_id_qualifier: str | None = None  # XX NPI, FI federal tax id, PI payer id, ...
    provider_adjustments: list[ProviderAdjustment] = field(default_factory=list)
    claim_count: int = 0
    segment: int | None = None


@dataclass(slots=True)
class ParsedClaim:
    claim_id: str  # CLP01 patient control number, CLM01, the EOB id, or the canonical claim_id
    payer_claim_control_number: str | None = None  # CLP07, the EOB's payer claim identifier
    status: str | None = None  # CLP02 (1 primary, 2 secondary, 3 tertiary, 4 denied, 22 reversal)
    status_label: str | None = None
    reversal: bool = False
    payer_name: str | None = None
    payer_id: str | None = None
    payee_name: str | None = None
    payee_npi: str | None = None  # 835 N1*PE XX, 837 billing provider NM1*85 XX
    payee_tin: str | None = None  # 835 N1*PE FI or REF*TJ, 837 REF*EI
    payee_id: str | None = None
    payee_id_qualifier: str | None = None
    rendering_npi: str | None = None
    charge_amount: Decimal | None = None
    paid_amount: Decimal | None = None  # null on an 837
    patient_responsibility: Decimal | None = None  # CLP05 as sent
    cost_sharing: Decimal | None = None  # CAS group PR at the claim level plus on its lines
    allowed_amount: Decimal | None = None
    payment_date: date | None = None
    payment_trace_number: str | None = None
    payment_method: str | None = None
    received_date: date | None = None  # 835 DTM*050 / EOB clmrecvddate: the payer received the claim
    bill_sent_date: date | None = None  # 837: see x837.bill_sent_date
    bill_sent_date_source: str | None = None
    statement_from: date | None = None
    statement_to: date | None = None
    place_of_service: str | None = None  # 837P CLM05-1
    facility_type_code: str | None = None  # 837I CLM05-1 (835 CLP08)
    frequency_code: str | None = None  # CLM05-3 / CLP09
    claim_filing_indicator: str | None = None  # CLP06 / SBR09
    adjustments: list[Adjustment] = field(default_factory=list)  # claim-level only
    remark_codes: list[str] = field(default_factory=list)  # claim level: MOA, MIA (lines have their own)
    # NSA remark codes found on the claim or any of its lines
    nsa_remark_codes: list[str] = field(default_factory=list)
    repricing: Repricing | None = None
    service_lines: list[ServiceLine] = field(default_factory=list)
    remittance: int | None = None  # index into ParseResult.remittances
    segment: int | None = None  # the CLP/CLM segment number


@dataclass(slots=True)
class ParseResult:
    format: Format
    claims: list[ParsedClaim] = field(default_factory=list)
    warnings: list[ParseWarning] = field(default_factory=list)
    remittances: list[Remittance] = field(default_factory=list)
    version: str | None = None  # X12 implementation guide, FHIR version
    # format "json" only: the claims as the intake API's ClaimIn models, ready to accept
    canonical: list[Any] = field(default_factory=list)


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: Decimal as a string (never a float), dates as ISO strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value) if f.name != "canonical"}
    return value
