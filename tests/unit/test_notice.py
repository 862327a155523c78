from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from services.negotiation.schemas import NoticeRequest
from services.negotiation.service import notice_content, render_html, render_pdf
from shared.events import ClaimAdjudicated, ClaimLine
from shared.http import Problem


def facts() -> ClaimAdjudicated:
    return ClaimAdjudicated(
        claim_id="CLM-1001",
        event_sequence=1,
        source_system="ehr",
        payer_name="Acme Health Plan",
        plan_type="self_insured_erisa",
        payer_contact_email="idr@acme.example",
        provider_npi="1234567893",
        provider_tin="123456789",
        provider_name="Metro Emergency Physicians",
        service_category="emergency",
        state="TX",
        initial_payment_received_on=date(2026, 11, 2),
        lines=[
            ClaimLine(
                line_number=1,
                service_code="99285",
                code_system="CPT",
                service_date=date(2026, 9, 28),
                billed=Decimal("2400.00"),
                paid=Decimal("350.00"),
                qpa=Decimal("410.00"),
            )
        ],
    )


REQ = NoticeRequest.model_validate(
    {"offer": {1: "1800.00"}, "sender": {"name": "Jane Roe", "email": "jane@metro.example"}}
)


def test_the_notice_has_the_standard_content() -> None:
    content = notice_content(facts(), REQ, "idr@acme.example", uuid.uuid4(), date(2026, 11, 23))
    html = render_html(content)
    for text in (
        "Open Negotiation Notice",
        "Acme Health Plan",
        "self-insured ERISA group health plan",
        "NPI 1234567893",
        "2026-09-28",
        "CPT 99285",
        "$2,400.00",
        "$350.00",
        "$410.00",
        "$1,800.00",
        "2026-11-02",
        "jane@metro.example",
    ):
        assert text in html, text
    # 30 business days beginning 2026-11-23 end on 2027-01-06 (Thanksgiving, Christmas, New Year)
    assert content["period_end"] == "2027-01-06" and content["window_closes"] == "2027-01-12"
    assert "(IDR Operations final rule)" not in html  # the 2026-rule block is switched off


def test_the_pdf_is_a_pdf() -> None:
    content = notice_content(facts(), REQ, "idr@acme.example", uuid.uuid4(), date(2026, 11, 23))
    pdf = render_pdf(render_html(content))
    assert pdf.startswith(b"%PDF-") and len(pdf) > 2000


def test_every_line_needs_an_offer() -> None:
    bad = NoticeRequest.model_validate({"offer": {2: "10.00"}, "sender": {"name": "x"}})
    with pytest.raises(Problem) as err:
        notice_content(facts(), bad, "idr@acme.example", uuid.uuid4(), date(2026, 11, 23))
    assert err.value.errors[0]["field"] == "offer"


def test_row_20_the_notice_counts_the_tenants_closures_and_never_says_denied_for_a_zero_payment() -> None:
    """audit row 20: a tenant closure on business day 10 of open negotiation moves the notice's
    period end by a business day, as it moves the claim's; a $0 line is not printed as denied."""
    from shared.rules.calendar import Closure, Overrides, federal_calendar

    cal = federal_calendar()
    issued = date(2026, 11, 16)
    req = NoticeRequest.model_validate(
        {"offer": {"1": "1800.00"}, "sender": {"name": "Jane", "email": "j@x.example"}}
    )
    plain = notice_content(facts(), req, "idr@acme.example", uuid.uuid4(), issued)
    closed_on = cal.business_day_beginning(issued, 10)
    closure = Overrides(closures=(Closure(start=closed_on, end=closed_on, name="Portal outage"),))
    moved = notice_content(facts(), req, "idr@acme.example", uuid.uuid4(), issued, closure)
    assert (
        moved["period_end"] == cal.business_days_after(date.fromisoformat(plain["period_end"]), 1).isoformat()
    )
    zero = facts().model_copy(
        update={
            "lines": [
                facts().lines[0].model_copy(update={"paid": Decimal("0"), "cost_sharing": Decimal("410.00")})
            ]
        }
    )
    html = render_html(notice_content(zero, req, "idr@acme.example", uuid.uuid4(), issued))
    assert "denied" not in html and "applied to the patient" in html


def test_row_21_the_notice_of_idr_initiation_names_every_missing_item_then_renders() -> None:
    """audit row 21: the Notice of IDR Initiation is a modelled document; a missing QPA, open
    negotiation start or attestation is a 422 naming each; complete, it renders HTML and a PDF."""
    import base64
    import hashlib

    from services.negotiation.initiation import InitiationNoticeRequest, initiation_content, render_initiation

    req = InitiationNoticeRequest.model_validate(
        {
            "initiating_party": {"name": "Jane", "email": "jane@billing.example"},
            "other_party_name": "Acme Health Plan",
            "other_party_email": "idr@acme.example",
            "preferred_entity": "Maximus",
            "attestation": False,
        }
    )
    no_qpa = facts().model_copy(update={"lines": [facts().lines[0].model_copy(update={"qpa": None})]})
    with pytest.raises(Problem) as err:
        initiation_content(no_qpa, None, req)
    fields = {e["field"] for e in err.value.errors or []}
    assert fields == {"open_negotiation_started_on", "lines[0].qpa", "attestation"}
    ok = req.model_copy(update={"attestation": True})
    out = render_initiation(initiation_content(facts(), date(2026, 11, 16), ok))
    pdf = base64.b64decode(out.pdf_base64)
    assert pdf.startswith(b"%PDF") and hashlib.sha256(pdf).hexdigest() == out.pdf_sha256
    assert "Maximus" in out.html and "$410.00" in out.html and "2026-11-16" in out.html
