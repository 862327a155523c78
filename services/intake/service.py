"""Intake's domain operation: accept a claim event durably, idempotently, with its outbox event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.batch import KEY_REUSED, SEQUENCE_TAKEN, accept_many
from services.intake.schemas import ClaimIn
from shared.http import Problem


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool


async def accept_claim(
    tenant_id: str, claim: ClaimIn, idempotency_key: str | None, engine: AsyncEngine | None = None
) -> Outcome:
    """Write the claim, its lines, the event record, the outbox row and the idempotency record in
    one transaction (:func:`services.intake.batch.accept_many` with one claim). A retry with the same
    key and body returns the first response; the same key with another body, or an event sequence
    already taken under another key, is a 409."""
    [result] = await accept_many(tenant_id, [(claim, idempotency_key)], engine)
    if result.result == "rejected":
        if result.problem == KEY_REUSED:
            raise Problem(
                409,
                KEY_REUSED,
                "Idempotency key reused with a different body",
                result.reason or "",
                field="Idempotency-Key",
            )
        raise Problem(
            409,
            SEQUENCE_TAKEN,
            "This claim event was already accepted",
            result.reason or "",
            field="event_sequence",
        )
    return Outcome(result.status_code, result.body, replayed=result.result == "duplicate")
