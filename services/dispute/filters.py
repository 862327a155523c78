"""The worklist's and the export's filters, and the worklist's opaque keyset cursor: pure pieces
of the claim-record queries in :mod:`services.dispute.records`."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement

from services.dispute.models import claims

c = claims.c
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,400}$")


class BadCursor(ValueError):
    """A worklist cursor that this code did not hand out (or that was altered)."""


@dataclass(frozen=True)
class ClaimFilters:
    """The worklist's and the export's filters; every one optional, all of them combined with AND."""

    stages: tuple[str, ...] = ()  # any of these stages
    payer: str | None = None
    provider_npi: str | None = None
    provider_tin: str | None = None
    service_code: str | None = None  # claims with a line of this code (GIN: service_codes @> ARRAY[...])
    due_before: date | None = None  # next deadline on or before this date
    due_after: date | None = None  # next deadline on or after this date
    min_amount_at_stake: Decimal | None = None
    include_final: bool = False  # also claims whose workflow has ended

    def where(self, tenant_id: str) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = [c.tenant_id == tenant_id]
        if len(self.stages) == 1:
            clauses.append(c.stage == self.stages[0])
        elif self.stages:
            clauses.append(c.stage.in_(self.stages))
        for column, value in (
            (c.payer_name, self.payer),
            (c.provider_npi, self.provider_npi),
            (c.provider_tin, self.provider_tin),
        ):
            if value is not None:
                clauses.append(column == value)
        if self.service_code is not None:
            clauses.append(c.service_codes.contains([self.service_code]))
        if self.due_before is not None:
            clauses.append(c.next_deadline_on <= self.due_before)
        if self.due_after is not None:
            clauses.append(c.next_deadline_on >= self.due_after)
        if self.min_amount_at_stake is not None:
            clauses.append(c.amount_at_stake >= self.min_amount_at_stake)
        if not self.include_final:
            clauses.append(c.final.is_(False))
        return clauses


def stages_of(values: Sequence[str] | None) -> tuple[str, ...]:
    """Stages given repeated and/or comma-separated (``stage=a&stage=b`` or ``stage=a,b``)."""
    return tuple(s.strip() for v in values or () for s in v.split(",") if s.strip())


# -- the cursor: base64url JSON of the last row's sort key --------------------------------------
def encode_cursor(at: datetime | None, claim_id: str) -> str:
    raw = json.dumps({"at": at.isoformat() if at else None, "id": claim_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime | None, str]:
    """The sort key (next_deadline_at, claim_id) of the last row of the previous page."""
    if not _CURSOR.match(cursor):
        raise BadCursor("not a cursor returned by this endpoint (base64url expected)")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = None if data["at"] is None else datetime.fromisoformat(data["at"])
        claim_id = data["id"]
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise BadCursor("not a cursor returned by this endpoint") from exc
    if not isinstance(claim_id, str) or set(data) != {"at", "id"} or (at is not None and at.tzinfo is None):
        raise BadCursor("not a cursor returned by this endpoint")
    return at, claim_id
