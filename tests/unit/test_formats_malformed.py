"""Malformed input: every outcome is a ParseError with a message, or a result with warnings; never
another exception type, never a silent empty result. Runs the unguarded parser (``parse_text``
after ``decode``) so a bug cannot hide behind the public ``parse``'s last-resort guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.formats import ParseError, ParseResult, parse, parse_text
from services.intake.formats.text import decode

OWN = Path(__file__).resolve().parents[1] / "fixtures_own"
BASE = (OWN / "base.835").read_bytes()
PROF = (OWN / "prof.837").read_bytes()
BUNDLE = (OWN / "eob_bundle.json").read_bytes()


def unguarded(data: bytes) -> ParseResult:
    text, warnings = decode(data)
    result = parse_text(text)
    result.warnings[:0] = warnings
    return result


def outcome(data: bytes) -> str:
    """'error' or 'result'; anything else raises and fails the test."""
    try:
        result = unguarded(data)
    except ParseError as exc:
        assert str(exc).strip()
        return "error"
    if not result.claims:
        assert result.warnings, "no claims and no warning saying so"
    return "result"


CORPUS = {
    "empty": b"",
    "whitespace": b"  \r\n\t ",
    "binary": bytes(range(256)) * 4,
    "png header": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40,
    "xml where x12 belongs": b'<?xml version="1.0"?><Remittance><Claim id="1"/></Remittance>',
    "utf-16 without BOM": BASE.decode().encode("utf-16-le"),
    "utf-16 odd length": BASE.decode().encode("utf-16-le")[:-1],
    "utf-32": "ISA*00".encode("utf-32"),
    "isa only": BASE[:106],
    "isa cut short": BASE[:50],
    "huge": BASE.replace(b"LX*2~", b"LX*2~" + b"REF*ZZ*" + b"9" * 200_000 + b"~"),
    "latin-1 names": BASE.replace(b"METRO EMERGENCY", "MÉTRO ÉMERGENCY".encode("latin-1")),
    "json garbage": b'{"resourceType": ',
    "json nesting": b"[" * 100_000 + b"]" * 100_000,
    "json NaN": b'{"resourceType": "ExplanationOfBenefit", "total": [{"amount": {"value": NaN}}]}',
    "json wrong type": b'{"resourceType": "ExplanationOfBenefit", "item": "nope"}',
    "json patient": b'{"resourceType": "Patient", "id": "p1"}',
    "json list": b"[1, 2, 3]",
    "json empty bundle": b'{"resourceType": "Bundle", "entry": []}',
    "x12 other transaction": BASE.replace(b"ST*835*0001", b"ST*270*0001"),
    "not a segment": b"hello world, this is not X12",
    "amounts that are words": BASE.replace(b"2400.00*350.00", b"NaN*Infinity").replace(b"800.00", b"1_0"),
    "clp with nothing": b"CLP~CLP*~SVC~CAS*PR~DTM*472~PLB*1*2*3~",
    "837 without hierarchy": b"ST*837*1~CLM*X*10~SV1*HC:99213*10~SE*3*1~",
    "837 cut mid claim": PROF[: PROF.index(b"LX*2")],
    "eob with bad dates": BUNDLE.replace(b"2026-01-08", b"yesterday"),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_malformed_corpus(name: str) -> None:
    outcome(CORPUS[name])


def test_named_failures() -> None:
    with pytest.raises(ParseError, match="empty"):
        parse(b"")
    with pytest.raises(ParseError, match="XML"):
        parse(CORPUS["xml where x12 belongs"])
    with pytest.raises(ParseError, match="binary"):
        parse(CORPUS["png header"])
    with pytest.raises(ParseError, match="270") as err:
        parse(CORPUS["x12 other transaction"])
    assert err.value.location == "ST01"
    with pytest.raises(ParseError, match="nested too deeply"):
        parse(CORPUS["json nesting"])
    with pytest.raises(ParseError) as err:
        parse(CORPUS["json wrong type"])
    assert err.value.location == "$.item"


def test_words_for_amounts_are_warnings_not_numbers() -> None:
    result = parse(CORPUS["amounts that are words"])
    assert result.claims[0].charge_amount is None and result.claims[0].paid_amount is None
    assert [w.location for w in result.warnings if w.code == "invalid_amount"][:2] == [
        "segment 13 (CLP) CLP03",
        "segment 13 (CLP) CLP04",
    ]


def test_every_prefix_of_a_file() -> None:
    for data in (BASE, PROF, BUNDLE):
        for cut in range(0, len(data), 7):
            outcome(data[:cut])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    outcome(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_edits_of_real_files(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from([BASE, PROF, BUNDLE, (OWN / "multi.835").read_bytes()]))
    pos = data.draw(st.integers(0, len(source)))
    size = data.draw(st.integers(0, 40))
    junk = data.draw(
        st.binary(max_size=20) | st.sampled_from([b"*", b"~", b":", b">", b"\n", b"\x00", b"ISA"])
    )
    outcome(source[:pos] + junk + source[pos + size :])


KEYS = ["resourceType", "item", "total", "entry", "resource", "claim_id", "lines", "amount", "value"]
KEYS += ["category", "coding", "code", "insurer", "provider", "payment"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(KEYS), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_random_json_shapes(doc: object) -> None:
    if isinstance(doc, dict) and "resourceType" in doc and data_is_str(doc["resourceType"]):
        doc["resourceType"] = "ExplanationOfBenefit"
    outcome(json.dumps(doc).encode())


def data_is_str(value: object) -> bool:
    return isinstance(value, str)
