"""Domain types of the claim lifecycle shared by the dispute and negotiation services: the stages,
the actions people and systems take (each a validated workflow update), and the open-negotiation
child workflow's contract."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from shared.ids import CLAIM_ID
from shared.openapi import JsonBool, JsonInt, Money, PositiveMoney, date_schema, money_schema, parse_date
from shared.rules.calendar import FIRST_YEAR, LAST_YEAR
from shared.text import FREE_TEXT_FIELDS, check_text, text_patterns

CALENDAR_FIRST = date(FIRST_YEAR, 1, 1)
CALENDAR_LAST = date(LAST_YEAR, 12, 31)


def in_calendar(day: date) -> date:
    """A date the business-day calendar can count from: anything else can never be planned."""
    if not CALENDAR_FIRST <= day <= CALENDAR_LAST:
        raise ValueError(
            f"{day.isoformat()} is outside the business-day calendar "
            f"({CALENDAR_FIRST.isoformat()}..{CALENDAR_LAST.isoformat()})"
        )
    return day


# every date an action or a claim event carries: refused with 422 when no deadline could be planned;
# YYYY-MM-DD only, and the OpenAPI pattern names the calendar's years
CalendarDate = Annotated[
    date,
    BeforeValidator(parse_date),
    AfterValidator(in_calendar),
    WithJsonSchema(date_schema(FIRST_YEAR, LAST_YEAR)),
]

LINE_KEY = r"^[1-9][0-9]{0,2}$"  # a line number as an object key: 1..999
_LINE_KEY = re.compile(LINE_KEY)
_CLAIM_KEY = re.compile(CLAIM_ID)


def _line_key(value: object) -> object:
    if isinstance(value, str):
        if not _LINE_KEY.fullmatch(value):
            raise ValueError("a line number (1-999) is expected as the key")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 999:
        raise ValueError("a line number (1-999) is expected as the key")
    return value


def _claim_key(value: object) -> object:
    if not isinstance(value, str) or not _CLAIM_KEY.fullmatch(value):
        raise ValueError("a claim id (letters, digits, . _ -, at most 64) is expected as the key")
    return value


LineKey = Annotated[int, BeforeValidator(_line_key)]
_OFFERS_SCHEMA = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": LINE_KEY},
    "additionalProperties": money_schema(),
}
# line number -> amount, e.g. {"1": "1800.00"}
Amounts = Annotated[
    dict[LineKey, Money],
    Field(min_length=1),
    WithJsonSchema({**_OFFERS_SCHEMA, "description": "line number -> amount"}),
]
BatchAmounts = Annotated[
    dict[Annotated[str, BeforeValidator(_claim_key)], Amounts],
    Field(min_length=1),
    WithJsonSchema(
        {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": CLAIM_ID},
            "additionalProperties": _OFFERS_SCHEMA,
            "description": "claim id -> line number -> amount",
        }
    ),
]


class Stage(StrEnum):
    RECEIVED = "received"
    AWAITING_INITIAL_PAYMENT = "awaiting_initial_payment"
    OPEN_NEGOTIATION_WINDOW = "open_negotiation_window"
    OPEN_NEGOTIATION = "open_negotiation"
    IDR_INITIATION_WINDOW = "idr_initiation_window"
    COOLING_OFF = "cooling_off"
    IDR_INITIATED = "idr_initiated"
    IDRE_SELECTION = "idre_selection"
    ELIGIBILITY_REVIEW = "eligibility_review"
    OFFERS_AND_FEES = "offers_and_fees"
    AWAITING_DETERMINATION = "awaiting_determination"
    PAYMENT_DUE = "payment_due"
    REFUND_DUE = "refund_due"  # the award is below what the plan paid: the provider refunds the excess
    RESUBMISSION_WINDOW = "resubmission_window"  # improperly batched: resubmit within 4 business days
    PAID = "paid"
    # exits
    SETTLED = "settled"
    INELIGIBLE = "ineligible"
    WITHDRAWN = "withdrawn"
    ADMINISTRATIVELY_CLOSED = "administratively_closed"
    FORFEITED = "forfeited"
    CLOSED = "closed"


TERMINAL = frozenset(
    {
        Stage.SETTLED,
        Stage.INELIGIBLE,
        Stage.WITHDRAWN,
        Stage.ADMINISTRATIVELY_CLOSED,
        Stage.FORFEITED,
        Stage.CLOSED,
    }
)
# an exit that a late record or an extension can still undo, for the grace period
RECOVERABLE = frozenset({Stage.FORFEITED})


class Action(BaseModel):
    """Base of every action: who took it (a person's name or email, or a system)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=text_patterns)
    actor: str = Field(default="api", max_length=200)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: object, info: ValidationInfo) -> object:
        """Names and references are one line; reasons and details may have tabs and newlines."""
        if isinstance(value, str):
            check_text(value, multiline=info.field_name in FREE_TEXT_FIELDS)
        return value


A = TypeVar("A", bound=Action)


class NoticeSent(Action):
    sent_on: CalendarDate
    recipient: str = Field(min_length=3, max_length=320)
    channel: Literal["email", "portal", "mail", "fax"] = "email"


class OfferMade(Action):
    party: Literal["provider", "payer"]
    offered_on: CalendarDate
    amounts: Amounts = Field(description="line number -> offered amount")


class Settlement(Action):
    settled_on: CalendarDate
    amount: Money = Field(
        description="the total out-of-network amount agreed for the claim's items; the plan owes it minus "
        "the patient's cost sharing and its payments so far, within 30 days",
    )


class ResponseNoticeReceived(Action):
    received_on: CalendarDate


class IdrInitiated(Action):
    initiated_on: CalendarDate
    dispute_number: str = Field(
        min_length=3, max_length=40, description="the CMS dispute number, e.g. DISP-123456"
    )
    preferred_entity: str | None = Field(default=None, max_length=200)


class PreferredEntityObjected(Action):
    """The other party objected to the preferred IDR entity named at initiation."""

    objected_on: CalendarDate


class EntitySelected(Action):
    selected_on: CalendarDate
    entity: str = Field(min_length=1, max_length=200)
    by: Literal["joint", "departments"]


class EligibilityObjection(Action):
    raised_on: CalendarDate
    reason: str = Field(min_length=1, max_length=2000)


class EligibilityDecision(Action):
    decided_on: CalendarDate
    eligible: JsonBool
    reason: str | None = Field(default=None, max_length=2000)
    improperly_batched: JsonBool = Field(
        default=False,
        description="ineligible only as batched: it may be resubmitted once within 4 business days",
    )


class EntityDeclined(Action):
    """The selected IDR entity cannot serve (a conflict of interest, decertification): another is
    selected and the offer and determination clocks start again from that selection."""

    declined_on: CalendarDate
    reason: Literal["conflict_of_interest", "decertified", "other"] = "conflict_of_interest"
    detail: str | None = Field(default=None, max_length=2000)


class OfferSubmitted(Action):
    submitted_on: CalendarDate
    amounts: Amounts


class FeesPaid(Action):
    paid_on: CalendarDate
    administrative_fee: Money
    idre_fee: Money


class LineAward(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    line_number: JsonInt = Field(ge=1)
    prevailing_party: Literal["provider", "payer"]
    amount: Money = Field(description="the out-of-network rate determined")


class Determination(Action):
    determined_on: CalendarDate
    lines: list[LineAward] = Field(min_length=1)
    default: JsonBool = False


class PaymentReceived(Action):
    received_on: CalendarDate
    amount: PositiveMoney
    source: Literal["manual", "835"] = "manual"
    reference: str | None = Field(default=None, max_length=200)


class FeeRefundReceived(Action):
    received_on: CalendarDate
    amount: Money


class ExtensionGranted(Action):
    deadline: str = Field(min_length=1, max_length=100, description="the deadline's name")
    new_date: CalendarDate
    reference: str = Field(min_length=1, max_length=500)


class CoolingOffApplies(Action):
    prior_determination_on: CalendarDate
    prior_initiated_by: Literal["provider", "plan"] = Field(
        default="provider", description="only the party that initiated the prior dispute is barred"
    )
    prior_batched: JsonBool = Field(default=False, description="the prior dispute was a batched dispute")
    prior_open_negotiation_started_on: CalendarDate | None = Field(
        default=None,
        description="the prior dispute's open negotiation start: it picks the batched cooling-off rule set",
    )


class RefundSent(Action):
    """The provider refunded what the plan paid above the amount determined."""

    sent_on: CalendarDate
    amount: PositiveMoney
    reference: str | None = Field(default=None, max_length=200)


class Closing(Action):
    reason: str = Field(min_length=1, max_length=2000)


# -- the open-negotiation child workflow --------------------------------------------------------
class NegotiationInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    claim_id: str
    started_on: CalendarDate
    period_end_at: str  # ISO instant (UTC) when the 30-business-day period ends
    line_numbers: list[int]


class NegotiationOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    settled: bool
    settlement: Settlement | None = None
    offers: list[OfferMade] = []


def actor_of(action: A, tenant_id: str, header: str | None) -> A:
    """Who acted: the body's ``actor``, else the ``X-Actor`` header, else the tenant's API key."""
    if action.actor != "api":
        return action
    return action.model_copy(update={"actor": header or f"api:{tenant_id}"})


# -- batches ----------------------------------------------------------------------------------
class MemberInfo(BaseModel):
    """What the batch check needs besides the claim's facts."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=text_patterns)
    claim_id: str = Field(pattern=CLAIM_ID, max_length=64)
    plan_id: str | None = Field(default=None, max_length=100, description="the specific plan (self-insured)")
    condition_group: str | None = Field(
        default=None, max_length=100, description="your 'similar condition' group"
    )
    encounter_id: str | None = Field(default=None, max_length=100)

    @field_validator("plan_id", "condition_group", "encounter_id")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)


class BatchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    batch_id: str
    members: list[MemberInfo] = Field(min_length=1)
    expires_after_days: int = Field(default=400, ge=1)  # a batch never waits forever


class MemberJoined(Action):
    member: MemberInfo


class BatchOfferSubmitted(Action):
    submitted_on: CalendarDate
    amounts: BatchAmounts


class BatchLineAward(LineAward):
    claim_id: str = Field(pattern=CLAIM_ID)


class BatchDetermination(Action):
    determined_on: CalendarDate
    lines: list[BatchLineAward] = Field(min_length=1)
    default: JsonBool = False


class MemberResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claim_id: str
    ok: bool
    stage: str | None = None
    reason: str | None = None
    # the member cannot take batch actions any more: its lifecycle ended, or it moved on alone
    left: bool = False


class FanOut(BaseModel):
    """One update to send to several member claims (each its own body)."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    update: str
    bodies: dict[str, dict[str, object]]  # claim id -> update body (JSON)
