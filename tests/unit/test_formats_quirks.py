"""Each quirk of real files, on fixtures written for these tests (tests/fixtures_own) and variants
of them made here: encodings, line layouts, envelopes, separators, odd values."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from services.intake.formats import ParseError, ParseResult, parse
from services.intake.formats.x837 import bill_sent_date

OWN = Path(__file__).resolve().parents[1] / "fixtures_own"


def own(name: str) -> bytes:
    return (OWN / name).read_bytes()


def codes(result: ParseResult) -> list[str]:
    return [w.code for w in result.warnings]


def facts(result: ParseResult) -> list[tuple[object, ...]]:
    return [
        (
            c.claim_id,
            c.status,
            c.charge_amount,
            c.paid_amount,
            c.cost_sharing,
            c.payment_date,
            c.payee_npi,
            tuple(
                (ln.procedure_code, tuple(ln.modifiers), ln.charge_amount, ln.service_date)
                for ln in c.service_lines
            ),
        )
        for c in result.claims
    ]


BASE = own("base.835")
BASE_FACTS = [
    ("CLM-1001", "1", D("2400.00"), D("350.00"), D("60.00"), date(2026, 1, 8), "1234567893",
     (("99285", ("25",), D("2400.00"), date(2025, 12, 28)),)),
    ("CLM-1002", "1", D("1200.00"), D("800.00"), D("0"), date(2026, 1, 8), "1234567893",
     (("70450", (), D("1200.00"), date(2025, 12, 29)),)),
]  # fmt: skip


def wrap80(data: bytes) -> bytes:
    flat = data.replace(b"\n", b"")
    return b"\n".join(flat[i : i + 80] for i in range(0, len(flat), 80)) + b"\n"


VARIANTS = {
    "as written (~ and a newline)": BASE,
    "utf-8 BOM": b"\xef\xbb\xbf" + BASE,
    "utf-16-le with BOM": BASE.decode().encode("utf-16"),
    "utf-16-le without BOM": BASE.decode().encode("utf-16-le"),
    "utf-16-be without BOM": BASE.decode().encode("utf-16-be"),
    "CRLF": BASE.replace(b"\n", b"\r\n"),
    "indented": BASE.replace(b"\n", b"\n    "),
    "one line": BASE.replace(b"\n", b""),
    "80-column wrapping": wrap80(BASE),
    "newline as the terminator": BASE.replace(b"~\n", b"\n"),
    "CRLF as the terminator": BASE.replace(b"~\n", b"\r\n"),
    "NUL padding at the end": BASE + b"\x00" * 64,
}


@pytest.mark.parametrize("layout", list(VARIANTS))
def test_every_layout_reads_the_same(layout: str) -> None:
    result = parse(VARIANTS[layout])
    assert result.format == "x12-835"
    assert facts(result) == BASE_FACTS
    assert result.claims[0].nsa_remark_codes == ["N830", "N860"]
    assert result.claims[0].remark_codes == ["MA01", "N830"]
    assert result.claims[0].service_lines[0].remark_codes == ["N860"]
    assert result.claims[0].service_lines[0].allowed_amount == D("410.00")
    assert result.claims[0].received_date == date(2026, 1, 2)
    (remit,) = result.remittances
    assert [(p.reason, p.amount) for p in remit.provider_adjustments] == [
        ("WO", D("52.50")),
        ("L6", D("-2.50")),
    ]


def test_base_is_clean() -> None:
    assert parse(BASE).warnings == []


def test_utf16_without_bom_says_so() -> None:
    assert "encoding" in codes(parse(VARIANTS["utf-16-le without BOM"]))


def test_wrapping_by_newline_terminator_joins_continuations() -> None:
    text = BASE.replace(b"~\n", b"\n").replace(b"CLP*CLM-1001*1*2400.00*", b"CLP*CLM-1001*1*2400.00*\n")
    assert facts(parse(text)) == BASE_FACTS


def test_missing_terminator_at_a_line_break_is_read_as_one() -> None:
    text = BASE.replace(b"DTM*232*20251228~", b"DTM*232*20251228")
    result = parse(text)
    assert facts(result) == BASE_FACTS
    assert "missing_terminator" in codes(result)


def test_two_interchanges_several_payees_reversal_plb_only() -> None:
    r = parse(own("multi.835"))
    assert [(c.claim_id, c.status, c.reversal, c.paid_amount) for c in r.claims] == [
        ("CLM-2001", "22", True, D("-300.00")),
        ("CLM-2001", "1", False, D("450.00")),
        ("CLM-2002", "4", False, D("0")),
        ("CLM-3001", "1", False, D("75.00")),
    ]
    assert [c.remittance for c in r.claims] == [0, 0, 0, 2]
    _, correction, _, other = r.claims
    # payee by tax id (FI) in the first transaction, by NPI in the second interchange
    assert (correction.payee_tin, correction.payee_npi, correction.payee_id_qualifier) == (
        "123456789",
        None,
        "FI",
    )
    assert (other.payee_npi, other.payer_name) == ("1245319599", "OTHER HEALTH PLAN")
    assert correction.payer_name is None  # empty N102
    # BPR16 missing: DTM*405; second interchange: the date sent in BPR15
    assert correction.payment_date == date(2026, 1, 9) and other.payment_date == date(2026, 1, 11)
    assert [x.payment_date_source for x in r.remittances] == ["DTM405", "BPR16", "BPR15"]
    line = correction.service_lines[0]
    assert (line.procedure_code, line.modifiers) == ("99284", ["25", "59"])  # ':' declared, '>' used
    assert line.service_date is None  # month 23
    assert [a.reason for a in line.adjustments] == [
        "45",
        "253",
        "94",
        "59",
        "W1",
        "A1",
        "1",
    ]  # 6 triplets + PR
    assert line.cost_sharing == D("50.00") and correction.cost_sharing == D("50.00")
    assert other.service_lines[0].procedure_code == "01996"  # '>' declared in the '|' interchange
    plb_only = r.remittances[1]
    assert (plb_only.claim_count, plb_only.payee_id_qualifier, plb_only.payee_tin) == (0, "PI", "987654321")
    assert [(p.reason, p.reference, p.amount) for p in plb_only.provider_adjustments] == [
        ("FB", "RECOUP1", D("125.00"))
    ]
    found = codes(r)
    for code in ("empty_name", "payment_date_fallback", "component_separator", "invalid_date",
                 "no_claims_in_remittance", "payment_date_bpr15", "duplicate_claim_id"):  # fmt: skip
        assert code in found
    where = {w.code: w.location for w in r.warnings}
    assert where["invalid_date"] == "segment 14 (DTM) DTM02"
    assert where["empty_name"] == "segment 7 (N1) N102"


def test_no_envelope_and_an_invalid_bpr16() -> None:
    r = parse(own("noenvelope.835"))
    assert facts(r) == [
        ("CLM-4001", "1", D("250.00"), D("200.00"), D("50.00"), date(2026, 1, 11), "1234567893",
         (("99283", (), D("250.00"), date(2026, 1, 5)),)),
    ]  # fmt: skip
    assert codes(r)[:3] == ["no_envelope", "invalid_date", "payment_date_fallback"]


def test_clp_without_any_envelope_and_a_truncated_claim() -> None:
    r = parse(own("bare_clp.835"))
    assert [(c.claim_id, c.paid_amount) for c in r.claims] == [("CLM-5001", D("80.00")), ("CLM-5002", None)]
    assert {"no_envelope", "no_payment_date", "truncated_claim", "truncated"} <= set(codes(r))


def test_a_file_with_only_plb_says_it_has_no_claims() -> None:
    text = own("multi.835").split(b"ISA|")[0]
    text = text.replace(text[text.index(b"ST*835*0001") : text.index(b"ST*835*0002")], b"")
    r = parse(text)
    assert r.claims == []
    assert {"no_claims", "no_claims_in_remittance"} <= set(codes(r))


def test_truncated_file_ends_inside_a_claim() -> None:
    cut = BASE[: BASE.index(b"CAS*CO*45*400.00")]
    r = parse(cut)
    assert [c.claim_id for c in r.claims] == ["CLM-1001", "CLM-1002"]
    assert "truncated" in codes(r)


def test_837_professional_hierarchy_and_repricing() -> None:
    r = parse(own("prof.837"))
    assert r.format == "x12-837"
    first, second = r.claims
    assert (first.claim_id, first.charge_amount, first.paid_amount) == ("CLM-1001", D("2400.00"), None)
    assert (first.payee_npi, first.payee_tin, first.payer_name) == (
        "1234567893",
        "123456789",
        "ACME HEALTH PLAN",
    )
    assert first.place_of_service == "23"
    assert (first.bill_sent_date, first.bill_sent_date_source) == (date(2026, 1, 2), "BHT04")
    assert first.repricing is not None and first.repricing.allowed_amount == D("900.00")
    assert first.repricing.pricing_methodology == "10"
    l1, l2 = first.service_lines
    assert (l1.procedure_code, l1.modifiers, l1.charge_amount, l1.units, l1.control_number) == (
        "99285", ["25"], D("1800.00"), D("1"), "1001-1",
    )  # fmt: skip
    assert (l2.service_date, l2.service_date_end) == (date(2025, 12, 28), date(2025, 12, 29))
    assert l2.repricing is not None and l2.repricing.allowed_amount == D("150.00")
    assert second.payer_name == "ACME HEALTH PLAN"  # the 2330B other payer did not replace it
    assert r.warnings == []


def test_837_institutional_without_bht04() -> None:
    r = parse(own("inst.837"))
    (c,) = r.claims
    assert (c.facility_type_code, c.place_of_service, c.frequency_code) == ("13", None, "1")
    assert (c.bill_sent_date, c.bill_sent_date_source) == (date(2026, 1, 4), "GS04")
    assert (c.statement_from, c.statement_to) == (date(2025, 12, 20), date(2025, 12, 21))
    assert c.allowed_amount == D("3200.00")
    assert [(ln.revenue_code, ln.procedure_code, ln.charge_amount, ln.units) for ln in c.service_lines] == [
        ("0450", "99285", D("3000.00"), D("1")),
        ("0300", None, D("2000.00"), D("4")),
    ]


def test_bill_sent_date_order() -> None:
    d1, d2, d3, d4 = (date(2026, 1, k) for k in (1, 2, 3, 4))
    assert bill_sent_date(d1, d2, d3, d4) == (d1, "BHT04")
    assert bill_sent_date(None, d2, d3, d4) == (d2, "DTP050")
    assert bill_sent_date(None, None, None, d4) == (d4, "ISA09")
    assert bill_sent_date(None, None, None, None) == (None, None)


def test_fhir_bundle() -> None:
    r = parse(own("eob_bundle.json"))
    assert r.format == "fhir-eob"
    first, second = r.claims
    assert (first.claim_id, first.payer_claim_control_number, first.payer_name) == (
        "eob-1001", "PCC900001", "Acme Health Plan",
    )  # fmt: skip
    assert (first.payee_npi, first.payee_tin) == ("1234567893", "123456789")  # from the Organization entry
    assert (first.charge_amount, first.paid_amount, first.cost_sharing) == (
        D("2400.00"),
        D("350.00"),
        D("60.00"),
    )
    assert [ln.procedure_code for ln in first.service_lines] == ["99285"]  # item 3 reversed item 2
    assert first.nsa_remark_codes == ["N830"]
    assert (first.payment_date, first.payment_trace_number, first.received_date) == (
        date(2026, 1, 8), "EFT26010801", date(2026, 1, 2),
    )  # fmt: skip
    assert (second.payee_npi, second.charge_amount, second.paid_amount) == ("1245319599", D("1200"), D("800"))
    assert second.service_lines[0].service_date is None
    assert {"reversal_netted", "invalid_date"} <= set(codes(r))


def test_fhir_single_resource_and_profile_warnings() -> None:
    import json

    bundle = json.loads(own("eob_bundle.json"))
    eob = json.dumps(bundle["entry"][2]["resource"]).encode()
    assert parse(eob).claims[0].claim_id == "eob-1002"
    found = {w.location for w in parse(eob, check_profile=True).warnings if w.code == "profile"}
    assert {"$.patient", "$.created", "$.use", "$.insurance"} <= found


@pytest.mark.parametrize(
    "change",
    [
        {"totalCost": {"value": 1}},
        {"organization": {"reference": "Organization/1"}},
        {"information": []},
        {"insurance": {"coverage": {"reference": "Coverage/1"}}},
        {"outcome": {"coding": [{"code": "complete"}]}},
        {"item": [{"sequence": 1, "service": {"coding": [{"code": "99285"}]}}]},
        {
            "meta": {
                "profile": ["https://bluebutton.cms.gov/assets/ig/StructureDefinition-bluebutton-stu3-eob"]
            }
        },
        {"fhirVersion": "3.0.2"},
    ],
)
def test_stu3_shapes_are_refused_with_the_reason(change: dict[str, object]) -> None:
    import json

    eob = {"resourceType": "ExplanationOfBenefit", "id": "x", "status": "active", **change}
    with pytest.raises(ParseError, match="R4"):
        parse(json.dumps(eob).encode())


def test_stu3_fixture_names_the_element() -> None:
    with pytest.raises(ParseError, match="totalCost"):
        parse(own("eob_stu3.json"))


def test_canonical_claim_json_passes_through() -> None:
    r = parse(own("claim.json"))
    assert r.format == "json"
    (c,) = r.claims
    assert (c.claim_id, c.payee_npi, c.charge_amount, c.paid_amount) == (
        "CLM-1001",
        "1234567893",
        D("2400.00"),
        D("350.00"),
    )
    assert r.canonical[0].claim_id == "CLM-1001"


def test_canonical_claim_json_errors_name_the_field() -> None:
    bad = own("claim.json").replace(b'"1234567893"', b'"1234567890"')
    with pytest.raises(ParseError) as err:
        parse(bad)
    assert err.value.location == "$.provider.npi"


def test_no_patient_names_in_warnings() -> None:
    for name in ("multi.835", "bare_clp.835", "prof.837", "inst.837", "noenvelope.835"):
        for w in parse(own(name)).warnings:
            for phi in ("DOE", "JANE", "JOHN", "ROE", "RICHARD", "W987654321", "19800101"):
                assert phi not in w.message


def test_835_fast_paths_build_the_models_in_field_order() -> None:
    """The 835 hot loop builds claims and lines with positional arguments: a field added, removed
    or moved in the models must be mirrored there (x835.CLAIM_FIELDS / LINE_FIELDS)."""
    from dataclasses import fields

    from services.intake.formats import ParsedClaim, ServiceLine
    from services.intake.formats.x835 import CLAIM_FIELDS, LINE_FIELDS

    assert tuple(f.name for f in fields(ParsedClaim)) == CLAIM_FIELDS
    assert tuple(f.name for f in fields(ServiceLine)) == LINE_FIELDS


def test_835_unusual_shapes_take_the_handlers_and_read_the_same() -> None:
    """Segments the hot loop leaves to the handlers (several CAS triplets, an SVC amount that is
    not a number, a DTM*405 after the header, REF*TJ in the payee loop) read as before."""
    text = BASE.replace(b"CAS*PR*2*60.00", b"CAS*PR*1*50.00**2*10.00")
    r = parse(text)
    assert facts(r) == BASE_FACTS
    assert [(a.reason, a.amount) for a in r.claims[0].service_lines[0].adjustments if a.group == "PR"] == [
        ("1", D("50.00")),
        ("2", D("10.00")),
    ]
    bad = parse(BASE.replace(b"SVC*HC:99285:25*2400.00", b"SVC*HC:99285:25*24X0.00"))
    assert bad.claims[0].service_lines[0].charge_amount is None
    assert "invalid_amount" in codes(bad)


def test_fhir_bundle_says_what_it_did_not_read() -> None:
    """Entries without a resource, and resources that are not EOBs, are named in warnings."""
    import json

    bundle = json.loads(own("eob_bundle.json"))
    bundle["entry"] += [7, {"fullUrl": "urn:uuid:x"}, {"resource": {"resourceType": "Patient", "id": "p"}}]
    r = parse(json.dumps(bundle).encode())
    assert len(r.claims) == 2
    unreadable = [w.location for w in r.warnings if w.code == "entry_unreadable"]
    n = len(bundle["entry"])
    assert unreadable == [f"$.entry[{n - 3}]", f"$.entry[{n - 2}]"]
    (other,) = [w for w in r.warnings if w.code == "other_resources"]
    assert other.message.endswith("Organization 1, Patient 1") and other.message.startswith("2 entries")
    odd = parse(json.dumps({"resourceType": "Bundle", "entry": {"resource": {}}}).encode())
    assert {"entry_not_list", "no_claims"} <= set(codes(odd))


def test_fhir_bundle_warnings_stay_small_for_a_hostile_bundle() -> None:
    import json

    junk = [0] * 50_000 + [{"resource": {"resourceType": f"Kind{i}"}} for i in range(500)]
    r = parse(json.dumps({"resourceType": "Bundle", "entry": junk}).encode())
    unreadable = [w for w in r.warnings if w.code == "entry_unreadable"]
    assert len(unreadable) == 11 and unreadable[-1].message.startswith("49990 more entries")
    (other,) = [w for w in r.warnings if w.code == "other_resources"]
    assert other.message.startswith("500 entries") and other.message.endswith("and 490 other types")
    assert len(other.message) < 400
