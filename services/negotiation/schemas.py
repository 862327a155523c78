"""API models of the negotiation service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from shared.lifecycle import Amounts
from shared.openapi import JsonBool
from shared.text import check_text, text_patterns


class Sender(BaseModel):
    """Who sends a notice: the name and phone go into emails and documents, one line each."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=text_patterns)
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=40)

    @field_validator("name", "phone")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)


class NoticeRequest(BaseModel):
    """Generate the open negotiation notice and send it to the payer by email through the notifier."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=text_patterns)
    offer: Amounts = Field(description="line number -> offered amount, for every line")
    sender: Sender
    recipient: EmailStr | None = Field(default=None, description="defaults to the payer contact on the claim")
    registration_number: str | None = Field(
        default=None, max_length=40, description="plan IDR registration (2026)"
    )
    resend: JsonBool = Field(
        default=False,
        description="issue another notice although one for the claim is issued or sent (else a 409)",
    )

    @field_validator("registration_number")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)


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
