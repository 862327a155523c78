"""Every public sample in ../shared/fixtures parses to the facts read from it by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from services.intake.formats import ParsedClaim, ParseResult, parse

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
pytestmark = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"the shared real-world samples are not checked out at {SHARED}"
)


def read(name: str) -> ParseResult:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return parse(path.read_bytes(), filename=path.name)


def codes(result: ParseResult) -> set[str]:
    return {w.code for w in result.warnings}


def lines(claim: ParsedClaim) -> list[tuple[str | None, list[str], D | None, D | None, date | None]]:
    return [
        (ln.procedure_code, ln.modifiers, ln.charge_amount, ln.paid_amount, ln.service_date)
        for ln in claim.service_lines
    ]


def test_emedny_three_claims_share_one_patient_control_number() -> None:
    r = read("x12/k_emedny_sample.txt")
    assert r.format == "x12-835"
    assert [c.payer_claim_control_number for c in r.claims] == [
        "1000210000000030",
        "1000220000000020",
        "1000230000000020",
    ]
    assert {c.claim_id for c in r.claims} == {"PATIENT ACCOUNT NUMBER"}
    assert "duplicate_claim_id" in codes(r)
    first, denied, third = r.claims
    assert (first.status, first.charge_amount, first.paid_amount) == ("1", D("34.25"), D("34.25"))
    assert (denied.status, denied.charge_amount, denied.paid_amount) == ("2", D("34"), D("0"))
    assert (third.charge_amount, third.paid_amount) == (D("34.25"), D("11.5"))
    assert lines(first) == [
        ("V2020", ["RB"], D("6"), D("6"), date(2010, 1, 1)),
        ("V2700", ["RB"], D("2.75"), D("2.75"), date(2010, 1, 1)),
        ("V2103", ["RB"], D("5.5"), D("5.5"), date(2010, 1, 1)),
        ("S0580", [], D("20"), D("20"), date(2010, 1, 1)),
    ]
    assert third.service_lines[1].service_date == date(2013, 9, 17)
    assert third.service_lines[2].remark_codes == ["N206"]
    assert [(a.group, a.reason, a.amount) for a in denied.service_lines[0].adjustments] == [
        ("CO", "29", D("12"))
    ]
    for c in r.claims:
        assert (c.payer_name, c.payee_npi, c.payee_tin) == ("NYSDOH", "9999999995", "000000000")
        assert c.payment_date == date(2010, 1, 1)
        assert c.payment_trace_number == "10100000000"
        assert c.nsa_remark_codes == []
    (remit,) = r.remittances
    assert (remit.payment_amount, remit.payment_method, remit.payment_date_source) == (
        D("45.75"),
        "ACH",
        "BPR16",
    )


def test_cob_contractual_adjustment() -> None:
    r = read("x12/lfh_cob-contractural-adjustment.835")
    (c,) = r.claims
    assert (c.claim_id, c.status, c.charge_amount, c.paid_amount) == (
        "0001000055",
        "2",
        D("541.00"),
        D("34.00"),
    )
    assert c.payer_claim_control_number == "50650619501"
    assert (c.payer_name, c.payee_npi, c.payee_tin) == ("YOUR TAX DOLLARS AT WORK", None, "3UR334563")
    assert c.payment_date == date(2005, 3, 18)  # sent in BPR15
    assert lines(c) == [("55669", [], D("541.00"), D("34.00"), date(2005, 2, 2))]  # '>' used, ':' declared
    assert [(a.group, a.reason, a.amount) for a in c.service_lines[0].adjustments] == [
        ("OA", "23", D("516.00")),
        ("OA", "94", D("-9.00")),
    ]
    assert {"payment_date_bpr15", "component_separator"} <= codes(r)


def test_medicare_part_a_two_claims_and_a_plb() -> None:
    r = read("x12/lfh_medicare-part-a.835")
    assert [(c.claim_id, c.charge_amount, c.paid_amount) for c in r.claims] == [
        ("666123", D("211366.97"), D("138018.40")),
        ("777777", D("15000.00"), D("11980.33")),
    ]
    assert [c.payer_claim_control_number for c in r.claims] == ["1999999444444", "1999999444445"]
    assert r.claims[1].remark_codes == ["MA02"]
    assert [(a.group, a.reason, a.amount) for a in r.claims[0].adjustments] == [("CO", "45", D("73348.57"))]
    for c in r.claims:
        assert (c.payer_name, c.payee_npi) == ("INSURANCE COMPANY OF TIMBUCKTU", "6543210903")
        assert c.payment_date == date(2002, 9, 13)
        assert c.service_lines == []
    (remit,) = r.remittances
    assert remit.payment_amount == D("150000.00")
    assert [(p.reason, p.reference, p.amount, p.fiscal_period_date) for p in remit.provider_adjustments] == [
        ("CV", "CP", D("-1.27"), date(2002, 12, 31))
    ]


def test_secondary_payment_cost_sharing_from_cas_pr() -> None:
    r = read("x12/lfh_secondary-payment.835")
    first, second = r.claims
    assert (first.claim_id, first.charge_amount, first.paid_amount) == (
        "L0004828311",
        D("10323.64"),
        D("912.00"),
    )
    assert (second.claim_id, second.paid_amount, second.patient_responsibility) == (
        "0001000053",
        D("310.00"),
        D("220.00"),
    )
    assert second.cost_sharing == D("220.00")
    assert [ln.cost_sharing for ln in second.service_lines] == [D("0"), D("220.00")]
    assert lines(second) == [
        ("12345", ["26"], D("166.50"), D("30.00"), date(2005, 1, 6)),
        ("66543", ["26"], D("585.00"), D("280.00"), date(2005, 1, 6)),
    ]
    assert second.payee_tin == "599944521" and second.payee_npi is None
    assert second.payment_date == date(2005, 4, 12)


def test_tertiary_payment_code_slipped_out_of_svc01() -> None:
    r = read("x12/lfh_tertiary-payment.835")
    (c,) = r.claims
    assert (c.claim_id, c.status, c.charge_amount, c.paid_amount) == (
        "0001000054",
        "3",
        D("1766.50"),
        D("187.50"),
    )
    assert lines(c) == [("24599", [], D("1766.50"), D("187.50"), date(2005, 1, 20))]
    assert "svc_shifted" in codes(r)


def test_837p_demo() -> None:
    r = read("x12/lfh_demo.example1.837")
    assert r.format == "x12-837"
    (c,) = r.claims
    assert (c.claim_id, c.charge_amount, c.paid_amount) == ("26463774", D("100.00"), None)
    assert (c.payee_npi, c.payee_tin) == ("1912301953", "587654321")
    assert (c.payer_name, c.payer_id) == ("KEY INSURANCE COMPANY", "999996666")
    assert c.place_of_service == "11"
    assert (c.bill_sent_date, c.bill_sent_date_source) == (date(2006, 10, 15), "BHT04")
    assert lines(c) == [
        ("99213", [], D("40.00"), None, date(2006, 10, 3)),
        ("87070", [], D("15.00"), None, date(2006, 10, 3)),
        ("99214", [], D("35.00"), None, date(2006, 10, 10)),
        ("86663", [], D("10.00"), None, date(2006, 10, 10)),
    ]


def test_837i_out_of_network_repriced() -> None:
    r = read("x12/lfh_out-of-network-repriced-claim.837i")
    (c,) = r.claims
    assert (c.claim_id, c.charge_amount) == ("W392-49141", D("14.84"))
    assert (c.payee_npi, c.payee_tin, c.payer_name) == ("1122334455", "111002222", "CONSERVATIVE INSURANCE")
    assert (c.facility_type_code, c.frequency_code, c.place_of_service) == ("13", "1", None)
    assert c.repricing is not None
    assert (c.repricing.pricing_methodology, c.repricing.allowed_amount) == ("00", D("0.00"))
    assert (c.repricing.organization_id, c.repricing.reject_reason) == ("333001234", "T1")
    assert c.bill_sent_date == date(2005, 7, 11)
    assert c.service_lines[0].revenue_code == "0301"
    assert lines(c) == [("82270", [], D("14.84"), None, date(2005, 6, 17))]


def test_carin_inpatient_eob() -> None:
    r = read("fhir/ExplanationOfBenefit_InpatientEOBExample1.json")
    assert r.format == "fhir-eob"
    (c,) = r.claims
    assert (c.claim_id, c.payer_name) == ("InpatientEOBExample1", "UPMC Health Plan")
    assert (c.charge_amount, c.paid_amount, c.allowed_amount) == (D("7147.2"), D("1393.57"), D("1542.01"))
    assert c.cost_sharing == D("120.0")  # copay 120 + deductible 0
    assert c.received_date == date(2017, 6, 1)
    assert c.payment_date is None
    assert len(c.service_lines) == 13
    assert {ln.procedure_code for ln in c.service_lines} == {"99231"}
    assert c.service_lines[0].revenue_code == "0301"
    assert c.service_lines[0].service_date == date(2017, 5, 23)
