"""Domain types of the claim lifecycle shared by the dispute and negotiation services: the stages,
the actions people and systems take (each a validated workflow update), and the open-negotiation
child workflow's contract."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field


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


class Action(BaseModel):
    """Base of every action: who took it (a person's name or email, or a system)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    actor: str = Field(default="api", max_length=200)


A = TypeVar("A", bound=Action)


class NoticeSent(Action):
    sent_on: date
    recipient: str = Field(min_length=3, max_length=320)
    channel: Literal["email", "portal", "mail", "fax"] = "email"


class OfferMade(Action):
    party: Literal["provider", "payer"]
    offered_on: date
    amounts: dict[int, Decimal] = Field(min_length=1, description="line number -> offered amount")


class Settlement(Action):
    settled_on: date
    amount: Decimal = Field(ge=0, max_digits=12, decimal_places=2)


class ResponseNoticeReceived(Action):
    received_on: date


class IdrInitiated(Action):
    initiated_on: date
    dispute_number: str = Field(
        min_length=3, max_length=40, description="the CMS dispute number, e.g. DISP-123456"
    )
    preferred_entity: str | None = Field(default=None, max_length=200)


class EntitySelected(Action):
    selected_on: date
    entity: str = Field(min_length=1, max_length=200)
    by: Literal["joint", "departments"]


class EligibilityObjection(Action):
    raised_on: date
    reason: str = Field(min_length=1, max_length=2000)


class EligibilityDecision(Action):
    decided_on: date
    eligible: bool
    reason: str | None = Field(default=None, max_length=2000)


class OfferSubmitted(Action):
    submitted_on: date
    amounts: dict[int, Decimal] = Field(min_length=1)


class FeesPaid(Action):
    paid_on: date
    administrative_fee: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    idre_fee: Decimal = Field(ge=0, max_digits=12, decimal_places=2)


class LineAward(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    line_number: int = Field(ge=1)
    prevailing_party: Literal["provider", "payer"]
    amount: Decimal = Field(
        ge=0, max_digits=12, decimal_places=2, description="the out-of-network rate determined"
    )


class Determination(Action):
    determined_on: date
    lines: list[LineAward] = Field(min_length=1)
    default: bool = False


class PaymentReceived(Action):
    received_on: date
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    source: Literal["manual", "835"] = "manual"
    reference: str | None = Field(default=None, max_length=200)


class FeeRefundReceived(Action):
    received_on: date
    amount: Decimal = Field(ge=0, max_digits=12, decimal_places=2)


class ExtensionGranted(Action):
    deadline: str
    new_date: date
    reference: str = Field(min_length=1, max_length=500)


class CoolingOffApplies(Action):
    prior_determination_on: date


class Closing(Action):
    reason: str = Field(min_length=1, max_length=2000)


# -- the open-negotiation child workflow --------------------------------------------------------
class NegotiationInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    claim_id: str
    started_on: date
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

    model_config = ConfigDict(extra="forbid")
    claim_id: str = Field(min_length=1, max_length=64)
    plan_id: str | None = Field(default=None, max_length=100, description="the specific plan (self-insured)")
    condition_group: str | None = Field(
        default=None, max_length=100, description="your 'similar condition' group"
    )
    encounter_id: str | None = Field(default=None, max_length=100)


class BatchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    batch_id: str
    members: list[MemberInfo] = Field(min_length=1)


class MemberJoined(Action):
    member: MemberInfo


class BatchOfferSubmitted(Action):
    submitted_on: date
    amounts: dict[str, dict[int, Decimal]] = Field(min_length=1, description="claim id -> line -> offer")


class BatchLineAward(LineAward):
    claim_id: str


class BatchDetermination(Action):
    determined_on: date
    lines: list[BatchLineAward] = Field(min_length=1)
    default: bool = False


class MemberResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claim_id: str
    ok: bool
    stage: str | None = None
    reason: str | None = None


class FanOut(BaseModel):
    """One update to send to several member claims (each its own body)."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    update: str
    bodies: dict[str, dict[str, object]]  # claim id -> update body (JSON)
