"""API models of the intake service: the canonical claim JSON."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.lifecycle import CalendarDate
from shared.rules.eligibility import PlanType, ServiceCategory
from shared.text import check_text

US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM "
    "NY NC ND "
    "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI".split()
)

Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(check_text)
]


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
    contact_email: EmailStr | None = None


class Provider(Strict):
    npi: Annotated[str, StringConstraints(pattern=r"^\d{10}$")]
    tin: Annotated[str, StringConstraints(pattern=r"^\d{9}$")]
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
    member_id: Annotated[str, StringConstraints(max_length=80)] | None = None
    date_of_birth: date | None = None


class Line(Strict):
    service_code: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{5}$", to_upper=True)]
    code_system: Literal["CPT", "HCPCS"]
    service_date: date
    billed: Money
    paid: Money
    qpa: Money | None = None
    cost_sharing: Money | None = Field(
        default=None,
        description="the patient's cost sharing for the line (deductible, copay, coinsurance); the plan "
        "owes the out-of-network rate minus this and its payments",
    )


class ClaimIn(Strict):
    claim_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    source_system: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    event_sequence: int = Field(
        default=1, ge=1, description="Order of this claim's events in the source system"
    )
    payer: Payer
    provider: Provider
    patient: Patient | None = None
    service_category: ServiceCategory
    state: Annotated[str, StringConstraints(to_upper=True)]
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

    @field_validator("state")
    @classmethod
    def _state(cls, v: str) -> str:
        if v not in US_STATES:
            raise ValueError("not a USPS state or territory code")
        return v

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
