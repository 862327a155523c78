"""``idrflow parse FILE``: JSON on stdout; unreadable input: a message on stderr naming the segment
or field, and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from services.cli import app

OWN = Path(__file__).resolve().parents[1] / "fixtures_own"
runner = CliRunner()

CLAIM_KEYS = {
    "claim_id", "payer_claim_control_number", "payer_name", "payee_npi", "charge_amount", "paid_amount",
    "payment_date", "nsa_remark_codes", "service_lines", "status", "cost_sharing", "payee_tin",
    "payment_trace_number",
}  # fmt: skip
LINE_KEYS = {"procedure_code", "charge_amount", "paid_amount", "service_date"}


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["parse", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_835() -> None:
    code, out, _ = run(str(OWN / "base.835"))
    assert code == 0
    doc = json.loads(out)
    assert doc["format"] == "x12-835"
    assert doc["warnings"] == []
    first = doc["claims"][0]
    assert CLAIM_KEYS <= first.keys()
    assert LINE_KEYS <= first["service_lines"][0].keys()
    assert (first["claim_id"], first["payer_claim_control_number"], first["payer_name"]) == (
        "CLM-1001", "PCC900001", "ACME HEALTH PLAN",
    )  # fmt: skip
    assert (first["payee_npi"], first["charge_amount"], first["paid_amount"]) == (
        "1234567893",
        "2400.00",
        "350.00",
    )
    assert (first["payment_date"], first["nsa_remark_codes"]) == ("2026-01-08", ["N830", "N860"])
    assert first["service_lines"][0]["service_date"] == "2025-12-28"
    assert doc["remittances"][0]["trace_number"] == "EFT26010801"


def test_837_has_null_paid_amounts_and_the_billing_npi() -> None:
    code, out, _ = run(str(OWN / "prof.837"), "--compact")
    assert code == 0 and "\n" not in out.strip()
    doc = json.loads(out)
    assert doc["format"] == "x12-837"
    claim = doc["claims"][0]
    assert (claim["claim_id"], claim["payee_npi"], claim["paid_amount"]) == ("CLM-1001", "1234567893", None)
    assert claim["service_lines"][0]["paid_amount"] is None


def test_fhir_and_json_and_stdin() -> None:
    code, out, _ = run(str(OWN / "eob_bundle.json"))
    assert code == 0 and json.loads(out)["format"] == "fhir-eob"
    code, out, _ = run("-", stdin=(OWN / "claim.json").read_bytes())
    assert code == 0 and json.loads(out)["format"] == "json"


def test_warnings_are_printed() -> None:
    code, out, _ = run(str(OWN / "multi.835"))
    assert code == 0
    warnings = json.loads(out)["warnings"]
    assert {"code": "invalid_date", "message": "'20252301' is not a date (CCYYMMDD)",
            "location": "segment 14 (DTM) DTM02", "segment": 14} in warnings  # fmt: skip


def test_unreadable_input_exits_2_naming_the_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.835"
    bad.write_bytes((OWN / "base.835").read_bytes().replace(b"ST*835*0001", b"ST*999*0001"))
    code, out, err = run(str(bad))
    assert code == 2 and out == ""
    assert "ST01" in err and "999" in err
    code, _, err = run(str(OWN / "eob_stu3.json"))
    assert code == 2 and "totalCost" in err
    code, _, err = run(str(tmp_path / "missing.835"))
    assert code == 2 and "missing.835" in err
