"""Rows of the claim record for two tenants, written straight into the dispute tables by
test_records.py, and the order the worklist must return them in."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

A, B = "acme-billing", "bravo-billing"
KEY_A, KEY_B = "idr_acme_test_key_0123456789", "idr_bravo_test_key_0123456789"
STAGES = ("open_negotiation_window", "idr_initiation_window", "entity_selected", "payment_due")
PAYERS = ("Acme Health Plan", "Beacon Mutual", "Cobalt Care")
NPIS = ("1234567893", "1987654321")
TINS = ("123456789", "987654321")
T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
DAY0 = date(2026, 12, 1)


def claim_row(tenant: str, claim_id: str, i: int, **changes: Any) -> dict[str, Any]:
    """An open claim; every third one shares its deadline instant with the next two (ties), one in
    four has none."""
    due = None if i % 4 == 3 else DAY0 + timedelta(days=i // 3)
    row: dict[str, Any] = {
        "tenant_id": tenant,
        "claim_id": claim_id,
        "record_seq": 1,
        "stage": STAGES[i % len(STAGES)],
        "final": False,
        "payer_name": PAYERS[i % len(PAYERS)],
        "provider_npi": NPIS[i % 2],
        "provider_tin": TINS[(i // 2) % 2],
        "state": "TX",
        "service_codes": ["99285"] if i % 5 else ["99285", "A0429"],
        "next_deadline_name": None if due is None else "idr_initiation_deadline",
        "next_deadline_on": due,
        "next_deadline_at": None if due is None else datetime(due.year, due.month, due.day, 22, tzinfo=UTC),
        "amount_billed": Decimal("2400.00"),
        "amount_initially_paid": Decimal("350.00"),
        "amount_at_stake": Decimal(i * 25) + Decimal("0.50"),
        "dates": {"initial_payment_received_on": "2026-11-02"},
        "workflow_id": f"claim:{tenant}:{claim_id}",
    }
    row.update(changes)
    return row


FACTS = {
    "claim_id": "C001",
    "event_sequence": 2,
    "source_system": "ehr-demo",
    "payer_name": "Acme Health Plan",
    "plan_type": "self_insured_erisa",
    "provider_npi": "1234567893",
    "provider_tin": "123456789",
    "provider_name": "Metro Emergency Physicians",
    "service_category": "emergency",
    "state": "TX",
    "initial_payment_received_on": "2026-11-02",
    "lines": [
        {"line_number": n, "service_code": code, "code_system": "CPT", "service_date": "2026-09-28",
         "billed": billed, "paid": paid, "qpa": "410.00"}
        for n, code, billed, paid in ((1, "99285", "2400.00", "350.00"), (2, "93010", "180.10", "20.00"))
    ],
}  # fmt: skip
AT = [T0 + timedelta(hours=h) for h in range(8)]


def c001(tenant: str, payer: str) -> dict[str, list[dict[str, Any]]]:
    """A claim in payment_due after a determination, with every kind of record row."""
    key = {"tenant_id": tenant, "claim_id": "C001"}
    claim = claim_row(
        tenant, "C001", 0, stage="payment_due", payer_name=payer, service_codes=["99285", "93010"]
    )
    claim |= {
        "event_sequence": 2,
        "facts": {**FACTS, "payer_name": payer},
        "next_deadline_name": "payment_due",
        "next_deadline_on": date(2026, 12, 31),
        "next_deadline_at": datetime(2027, 1, 1, 4, 59, 59, tzinfo=UTC),
        "amount_owed": Decimal("1460.10"),
        "amount_received": Decimal("1000.00"),
        "amount_at_stake": Decimal("460.10"),
        "dispute_number": "DISP-2026-000123",
        "idr_entity": "=Federal IDR Entity LLC",
        "payment_escalations": 1,
        "dates": {
            "initial_payment_received_on": "2026-11-02",
            "open_negotiation_started_on": "2026-11-04",
            "idr_initiated_on": "2026-12-18",
            "idre_selected_on": "2026-12-22",
            "determination_on": "2026-12-01",
        },
    }
    lines = [
        key | {"line_number": 1, "service_code": "99285", "code_system": "CPT",
               "service_date": date(2026, 9, 28), "billed": Decimal("2400.00"), "paid": Decimal("350.00"),
               "qpa": Decimal("410.00"), "provider_offer": Decimal("1800.00"),
               "payer_offer": Decimal("450.00"), "determined_amount": Decimal("1800.00"),
               "prevailing_party": "provider"},
        key | {"line_number": 2, "service_code": "93010", "code_system": "CPT",
               "service_date": date(2026, 9, 28), "billed": Decimal("180.10"), "paid": Decimal("20.00"),
               "qpa": None, "provider_offer": None, "payer_offer": None, "determined_amount": None,
               "prevailing_party": None},
    ]  # fmt: skip
    transitions = [
        key | {"seq": 1, "stage": "open_negotiation_window", "previous_stage": None, "at": AT[0],
               "reason": "claim adjudicated", "actor": "system", "changes": None},
        key | {"seq": 2, "stage": "determined", "previous_stage": "open_negotiation_window", "at": AT[3],
               "reason": "determination recorded", "actor": "ops@acme", "changes": None},
        key | {"seq": 3, "stage": "payment_due", "previous_stage": "determined", "at": AT[3],
               "reason": "payment due in 30 days", "actor": "system",
               "changes": {"qpa": ["400.00", "410.00"]}},
    ]  # fmt: skip
    actions = [
        key | {"seq": 1, "action": "payment_received", "at": AT[2], "actor": "ops@acme",
               "outcome": "rejected", "idempotency_key": "k-1", "details": {"amount": "5.00"}},
        key | {"seq": 2, "action": "determination", "at": AT[3], "actor": "ops@acme",
               "outcome": "applied", "idempotency_key": "k-2", "details": {"determined_on": "2026-12-01"}},
        key | {"seq": 3, "action": "payment_received", "at": AT[5], "actor": "ops@acme",
               "outcome": "applied", "idempotency_key": None, "details": {"amount": "1000.00"}},
    ]  # fmt: skip
    rule = {"rule_id": "B-2.9", "rule_set": "2024-final", "explanation": "30 calendar days"}
    deadlines = [
        key | rule | {"name": "payment_due", "due_on": date(2026, 12, 30),
                      "due_at": datetime(2026, 12, 31, 4, 59, 59, tzinfo=UTC),
                      "planned_at": AT[1], "superseded_at": AT[3]},
        key | rule | {"name": "payment_due", "due_on": date(2026, 12, 31),
                      "due_at": datetime(2027, 1, 1, 4, 59, 59, tzinfo=UTC),
                      "planned_at": AT[3], "superseded_at": None},
        key | rule | {"name": "idr_initiation_deadline", "due_on": date(2026, 12, 18), "rule_id": "A-6.2",
                      "due_at": datetime(2026, 12, 19, 4, 59, 59, tzinfo=UTC),
                      "planned_at": AT[0], "superseded_at": None},
    ]  # fmt: skip
    alert = key | {"event_type": "DeadlineApproaching", "deadline_name": "payment_due"}
    alerts = [
        alert | {"event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/r5"), "kind": "reminder-5",
                 "due_on": date(2026, 12, 31), "at": AT[4], "summary": "payment due in 5 business days"},
        alert | {"event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/o1"), "kind": "overdue-1",
                 "event_type": "PaymentOverdue", "due_on": date(2026, 12, 31), "at": AT[6],
                 "summary": "payment overdue"},
    ]  # fmt: skip
    return {
        "claims": [claim],
        "claim_lines": lines,
        "claim_transitions": transitions,
        "claim_actions": actions,
        "claim_deadlines": deadlines,
        "claim_alerts": alerts,
    }


OPEN_A = [claim_row(A, f"P{i:03d}", i) for i in range(1, 120)]  # with C001: 120 open claims
FINAL_A = [
    claim_row(A, f"F{i:03d}", i, stage="closed", final=True, closed_at=T0, next_deadline_name=None,
           next_deadline_on=None, next_deadline_at=None)
    for i in range(6)
]  # fmt: skip
ROWS_B = [
    claim_row(B, "P001", 1, payer_name="Bravo Only Plan"),
    claim_row(B, "Q001", 2, payer_name="Bravo Only Plan"),
]


def open_a() -> list[dict[str, Any]]:
    return [*OPEN_A, c001(A, "Acme Health Plan")["claims"][0]]


def in_urgency_order(rows: list[dict[str, Any]], keep: Any = lambda r: True) -> list[str]:
    chosen = [r for r in rows if keep(r)]
    far = datetime.max.replace(tzinfo=UTC)
    chosen.sort(key=lambda r: (r["next_deadline_at"] is None, r["next_deadline_at"] or far, r["claim_id"]))
    return [r["claim_id"] for r in chosen]
