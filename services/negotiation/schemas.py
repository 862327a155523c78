"""API models of the negotiation service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field

Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class Sender(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=40)


class NoticeRequest(BaseModel):
    """Generate the open negotiation notice and send it to the payer by email through the notifier."""

    model_config = ConfigDict(extra="forbid")
    offer: dict[int, Money] = Field(min_length=1, description="line number -> offered amount, for every line")
    sender: Sender
    recipient: EmailStr | None = Field(default=None, description="defaults to the payer contact on the claim")
    registration_number: str | None = Field(
        default=None, max_length=40, description="plan IDR registration (2026)"
    )
    resend: bool = Field(
        default=False,
        description="issue another notice although one for the claim is issued or sent (else a 409)",
    )


class NoticeOut(BaseModel):
    notice_id: UUID
    claim_id: str
    recipient: str
    status: Literal["issued", "sent", "failed"]
    pdf_sha256: str
    message_id: str | None
    sent_at: datetime | None
    detail: str | None
    created_at: datetime
