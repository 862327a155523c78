from __future__ import annotations

import json
from datetime import UTC, date, datetime

from services.intake.schemas import npi_is_valid
from services.notifier.service import render_alert
from shared.events import DeadlineApproaching, DeadlineMissed, Envelope
from shared.settings import Settings


def approaching(left: int) -> Envelope:
    payload = DeadlineApproaching(
        deadline_name="open_negotiation_initiation_deadline",
        due_on=date(2026, 12, 15),
        due_at=datetime(2026, 12, 16, 4, 59, 59, tzinfo=UTC),
        business_days_left=left,
        payer_name="Acme Health Plan",
        stage="open_negotiation_window",
        action="Send the open negotiation notice to Acme Health Plan by 2026-12-15.",
        explanation="30 business days beginning 2026-11-02; skipped 2026-11-11 Veterans Day",
    )
    return Envelope.wrap(payload, tenant_id="demo", claim_id="CLM-1001")


def test_an_approaching_deadline_says_what_when_and_what_to_do() -> None:
    msg = render_alert(approaching(5), Settings())
    assert msg.subject == (
        "[idrflow] Open negotiation must start in 5 business days (2026-12-15): "
        "claim CLM-1001, Acme Health Plan"
    )
    assert "5 business days left" in msg.text and "Send the open negotiation notice" in msg.text
    assert "skipped 2026-11-11 Veterans Day" in msg.text and "/v1/claims/CLM-1001" in msg.text
    assert "<h2" in msg.html and "CLM-1001" in msg.slack_text
    assert "*Due*\n2026-12-15" in [f["text"] for f in msg.slack_blocks[1]["fields"]]


def test_the_day_itself_and_a_single_day_read_naturally() -> None:
    assert "must start today (2026-12-15)" in render_alert(approaching(0), Settings()).subject
    assert "in 1 business day (" in render_alert(approaching(1), Settings()).subject


def test_a_missed_deadline_states_the_consequence() -> None:
    payload = DeadlineMissed(
        deadline_name="open_negotiation_initiation_deadline",
        due_on=date(2026, 12, 15),
        payer_name="Acme Health Plan",
        stage="forfeited",
        consequence="The claim is no longer eligible for federal IDR.",
    )
    msg = render_alert(Envelope.wrap(payload, tenant_id="demo", claim_id="CLM-1001"), Settings())
    assert msg.subject.startswith("[idrflow] MISSED: Open negotiation must start by 2026-12-15")
    assert "no longer eligible" in msg.text and ":red_circle:" in msg.slack_text


def test_html_escapes_what_came_from_outside() -> None:
    env = approaching(2)
    env = env.model_copy(update={"payload": {**env.payload, "payer_name": "<script>x</script>"}})
    msg = render_alert(env, Settings())
    assert "<script>" not in msg.html and "&lt;script&gt;" in msg.html
    assert "<script>" not in json.dumps(msg.slack_blocks) and "<script>" not in msg.slack_text


def test_npi_check_digit() -> None:
    assert npi_is_valid("1234567893")
    assert not npi_is_valid("1234567890")
    assert not npi_is_valid("12345")


def test_a_payment_overdue_escalation_says_how_much_and_how_late() -> None:
    from decimal import Decimal

    from shared.events import PaymentOverdue

    payload = PaymentOverdue(
        deadline_name="payment_deadline",
        due_on=date(2027, 3, 31),
        amount_owed=Decimal("1150.00"),
        amount_received=Decimal("400.00"),
        amount_outstanding=Decimal("750.00"),
        days_overdue=8,
        escalation_level=2,
        payer_name="Acme Health Plan",
        stage="payment_due",
        action="Acme Health Plan still owes $750.00.",
    )
    msg = render_alert(Envelope.wrap(payload, tenant_id="demo", claim_id="CLM-1001"), Settings())
    assert msg.subject.startswith("[idrflow] PAYMENT OVERDUE: $750.00 unpaid, 8 days late (notice 2)")
    assert "$1,150.00" in msg.text and "2027-03-31" in msg.text and ":red_circle:" in msg.slack_text


def test_a_dead_letter_tells_the_operator_how_to_inspect_and_replay_it() -> None:
    import uuid

    from shared.events import DeadLetter

    dead = uuid.uuid4()
    env = Envelope.wrap(
        DeadLetter(
            dead_letter_id=dead,
            consumer="dispute-claims",
            topic="idr.claims.v1",
            partition=2,
            offset=41,
            error_type="ValidationError",
            original_event_type="ClaimAdjudicated",
        ),
        tenant_id="demo",
        claim_id="CLM-1001",
    )
    msg = render_alert(env, Settings())
    assert msg.subject.startswith(
        "[idrflow] NOT APPLIED: ClaimAdjudicated for this claim is in the dead-letter"
    )
    assert (
        f"idrflow dlq replay {dead}" in msg.text
        and f"idrflow dlq show {dead}" in msg.slack_blocks[2]["text"]["text"]
    )
    assert "ValidationError" in msg.text and "offset 41" in msg.text
