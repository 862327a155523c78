"""What the claim workflow writes to its record: the current row, the transitions and actions new
since the last write, and the events that announce them (pure, deterministic)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.dispute.schemas import (
    ClaimState,
    DeadlineView,
    LineRecord,
    NumberedAction,
    NumberedTransition,
    RecordRequest,
)


def line_records(s: ClaimState) -> list[LineRecord]:
    """Per line: the provider's offer to the IDR entity, the payer's last offer in open
    negotiation, and the determination, from the actions recorded so far."""
    lines: dict[int, LineRecord] = {}
    if s.facts:
        lines = {line.line_number: LineRecord(line_number=line.line_number) for line in s.facts.lines}

    def put(number: object, **values: object) -> None:
        try:
            n = int(str(number))
        except ValueError:
            return
        if n in lines:
            lines[n] = lines[n].model_copy(update=values)

    for a in s.actions:
        if a.outcome != "applied":
            continue
        if a.action == "offer_submitted":
            for n, amount in dict(a.details.get("amounts", {})).items():
                put(n, provider_offer=Decimal(str(amount)))
        elif a.action == "offer_payer":
            for n, amount in dict(a.details.get("amounts", {})).items():
                put(n, payer_offer=Decimal(str(amount)))
        elif a.action == "determination":
            for award in list(a.details.get("lines", [])):
                put(
                    award.get("line_number"),
                    determined_amount=Decimal(str(award.get("amount"))),
                    prevailing_party=award.get("prevailing_party"),
                )
    return [lines[n] for n in sorted(lines)]


def record_request(
    s: ClaimState, now: datetime, next_deadline: DeadlineView | None, *, final: bool
) -> RecordRequest:
    """The next write of the claim record; advances ``s.record_seq`` (the caller marks the
    transitions, actions and events as recorded once the write succeeded)."""
    s.record_seq += 1
    return RecordRequest(
        record_seq=s.record_seq,
        tenant_id=s.tenant_id,
        claim_id=s.claim_id,
        at=now,
        stage=s.stage,
        final=final,
        facts=s.facts,
        dates=dict(s.dates),
        deadlines=list(s.deadlines.values()),
        next_deadline=next_deadline,
        amount_owed=s.amount_owed,
        amount_received=s.amount_received,
        payment_escalations=s.payment_escalations,
        refund_owed=s.refund_owed,
        refund_sent=s.refund_sent,
        dispute_number=s.dispute_number,
        idr_entity=s.idr_entity,
        lines=line_records(s),
        transitions=[
            NumberedTransition(seq=i + 1, **t.model_dump())
            for i, t in enumerate(s.transitions)
            if i >= s.recorded_transitions
        ],
        actions=[
            NumberedAction(seq=i + 1, **a.model_dump())
            for i, a in enumerate(s.actions)
            if i >= s.recorded_actions
        ],
        events=list(s.pending_events),
    )


def mark_recorded(s: ClaimState, req: RecordRequest) -> None:
    s.recorded_transitions = max(s.recorded_transitions, max((t.seq for t in req.transitions), default=0))
    s.recorded_actions = max(s.recorded_actions, max((a.seq for a in req.actions), default=0))
    sent = {e.event_id for e in req.events}
    s.pending_events = [e for e in s.pending_events if e.event_id not in sent]
