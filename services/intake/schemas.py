"""API models of the intake service: the canonical claim JSON."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.networks import validate_email

from shared.ids import CLAIM_ID
from shared.lifecycle import CalendarDate
from shared.openapi import _WS_CLASS, IsoDate, JsonInt, Money, strip, stripped
from shared.rules.eligibility import PlanType, ServiceCategory
from shared.text import check_text

US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM "
    "NY NC ND "
    "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI".split()
)

# Intake strips surrounding whitespace (Unicode White_Space) from every text value before checking
# it; each pattern below says so, so the OpenAPI document accepts exactly what the validators do.
_CTRL = r"\x00-\x1f\x7f"
_EDGE = f"[^{_WS_CLASS}{_CTRL}]"  # first and last character: neither whitespace nor control


def _text_core(max_length: int) -> str:
    return f"{_EDGE}(?:[^{_CTRL}]{{0,{max_length - 2}}}{_EDGE})?"


def _text_check(max_length: int, *, required: bool = True) -> BeforeValidator:
    """One line of text: stripped, 1 (or 0) to ``max_length`` characters, no control characters."""

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("expected a string")
        value = strip(value)
        if required and not value:
            raise ValueError("must not be empty")
        if len(value) > max_length:
            raise ValueError(f"at most {max_length} characters")
        return check_text(value)

    return BeforeValidator(check)


def _text_schema(max_length: int, *, required: bool = True) -> WithJsonSchema:
    core = _text_core(max_length) if required else f"(?:{_text_core(max_length)})?"
    return WithJsonSchema({"type": "string", "pattern": stripped(core)})


def _code_check(core: str, reason: str, transform: Callable[[str], str] = str) -> BeforeValidator:
    """A code: stripped of surrounding whitespace, then it must fully match ``core``."""
    compiled = re.compile(core)

    def check(value: Any) -> Any:
        if not isinstance(value, str) or not compiled.fullmatch(strip(value)):
            raise ValueError(reason)
        return transform(strip(value))

    return BeforeValidator(check)


def _code_schema(core: str, description: str | None = None) -> WithJsonSchema:
    schema = {"type": "string", "pattern": stripped(core)}
    if description:
        schema["description"] = description
    return WithJsonSchema(schema)


def _any_case(code: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in code)


_ID = CLAIM_ID[1:-1]
_STATES = "|".join(_any_case(s) for s in sorted(US_STATES))
_NPI_DESCRIPTION = (
    "10 digits whose last is the check digit (Luhn over the prefix 80840 and the first nine digits); "
    "a wrong check digit is refused with 422"
)

Text = Annotated[str, _text_check(200), _text_schema(200)]
MemberId = Annotated[str, _text_check(80, required=False), _text_schema(80, required=False)]
Id = Annotated[
    str,
    _code_check(_ID, "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
    _code_schema(_ID),
]
Npi = Annotated[
    str, _code_check("[0-9]{10}", "an NPI is 10 digits"), _code_schema("[0-9]{10}", _NPI_DESCRIPTION)
]
Tin = Annotated[str, _code_check("[0-9]{9}", "a TIN is 9 digits"), _code_schema("[0-9]{9}")]
ServiceCode = Annotated[
    str,
    _code_check("[A-Za-z0-9]{5}", "a CPT or HCPCS code is 5 letters or digits", str.upper),
    _code_schema("[A-Za-z0-9]{5}"),
]
State = Annotated[
    str,
    _code_check(_STATES, "not a USPS state or territory code", str.upper),
    _code_schema(_STATES, "USPS state or territory code (any case)"),
]


@lru_cache(maxsize=4096)
def _email(value: str) -> str:
    """pydantic's ``EmailStr`` check (the normalized address, or its error), remembered: a payer's
    address repeats on every claim, and email-validator costs as much as the rest of the claim."""
    return validate_email(value)[1]


Email = Annotated[str, AfterValidator(_email), WithJsonSchema({"type": "string", "format": "email"})]

# the Content-Length-free twin of the other services' Idempotency-Key header
INTAKE_KEY = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"


@lru_cache(maxsize=4096)  # a billing company sends the same few NPIs on every claim
def npi_is_valid(npi: str) -> bool:
    """NPI check digit: Luhn over the constant prefix 80840 and the first nine digits."""
    if len(npi) != 10 or not npi.isdigit():
        return False
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Payer(Strict):
    name: Text
    plan_type: PlanType
    contact_email: Email | None = None


class Provider(Strict):
    npi: Npi
    tin: Tin
    name: Text

    @field_validator("npi")
    @classmethod
    def _npi_check_digit(cls, v: str) -> str:
        if not npi_is_valid(v):
            raise ValueError("NPI check digit does not match (Luhn with prefix 80840)")
        return v


class Patient(Strict):
    """Protected health information: stored by intake only, never published."""

    name: Text | None = None
    member_id: MemberId | None = None
    date_of_birth: IsoDate | None = None


class Line(Strict):
    service_code: ServiceCode
    code_system: Literal["CPT", "HCPCS"]
    service_date: IsoDate
    billed: Money
    paid: Money
    qpa: Money | None = None
    cost_sharing: Money | None = Field(
        default=None,
        description="the patient's cost sharing for the line (deductible, copay, coinsurance); the plan "
        "owes the out-of-network rate minus this and its payments",
    )


class ClaimIn(Strict):
    claim_id: Id
    source_system: Id
    event_sequence: JsonInt = Field(
        default=1, ge=1, le=2**31 - 1, description="Order of this claim's events in the source system"
    )
    payer: Payer
    provider: Provider
    patient: Patient | None = None
    service_category: ServiceCategory
    state: State
    bill_sent_on: CalendarDate | None = None
    initial_payment_received_on: CalendarDate | None = Field(
        default=None,
        description="Day the initial payment or notice of denial arrived; leave out while waiting for it "
        "(then bill_sent_on is required and the plan's 30-day clock is tracked)",
    )
    open_negotiation_started_on: CalendarDate | None = Field(
        default=None,
        description="Day the open negotiation notice was sent, if before the claim reached idrflow",
    )
    lines: list[Line] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _dates_in_order(self) -> ClaimIn:
        received = self.initial_payment_received_on
        if received is None:
            if self.bill_sent_on is None:
                raise ValueError(
                    "initial_payment_received_on: give the day the initial payment or denial arrived, "
                    "or bill_sent_on to track the plan's 30-day payment clock"
                )
            if self.open_negotiation_started_on:
                raise ValueError(
                    "open_negotiation_started_on: open negotiation follows the initial payment or denial"
                )
        elif self.bill_sent_on and received < self.bill_sent_on:
            raise ValueError(
                "initial_payment_received_on: the initial payment cannot arrive before the bill was sent "
                f"({self.bill_sent_on.isoformat()})"
            )
        started = self.open_negotiation_started_on
        if started and received and started < received:
            raise ValueError(
                "open_negotiation_started_on: open negotiation cannot start before the initial payment "
                "or denial"
            )
        for i, line in enumerate(self.lines):
            if self.bill_sent_on and line.service_date > self.bill_sent_on:
                raise ValueError(f"lines[{i}].service_date: the service date is after the bill was sent")
            if received and line.service_date > received:
                raise ValueError(f"lines[{i}].service_date: the service date is after the initial payment")
        return self


class ClaimAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    tenant_id: str
    claim_id: str
    event_sequence: int
    event_id: UUID
    workflow_id: str
