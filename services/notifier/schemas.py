"""API models of the notifier."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel


class Delivery(BaseModel):
    event_id: UUID
    claim_id: str
    event_type: str
    channel: str
    # pending: waiting for its next attempt (next_attempt_at); failed: for good (see detail)
    status: Literal["pending", "claimed", "sending", "sent", "failed", "unconfirmed"]
    attempts: int
    next_attempt_at: datetime | None = None
    provider_message_id: str | None
    detail: str | None
    sent_at: datetime | None
