"""The state-law table as data (audit 2026-11 section 2 and rows 6, 7, 8)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from shared.rules.eligibility import STATE_LAWS_FILE, StateLawTable, load_state_laws

RAW: dict[str, Any] = json.loads(STATE_LAWS_FILE.read_text(encoding="utf-8"))
DOC = Path(__file__).resolve().parents[2] / "docs" / "rules-2026-11.md"
REVIEWED = ("DE", "MI", "NE", "NV", "NH", "NM", "OR")


def test_every_entry_carries_its_source_and_a_verified_flag() -> None:
    """audit section 2: every entry says what it rests on and whether that was verified."""
    for code, entry in RAW["states"].items():
        assert isinstance(entry.get("source"), str) and len(entry["source"]) > 10, code
        assert isinstance(entry.get("verified"), bool), code


def test_unknown_opt_in_is_stored_as_unknown() -> None:
    """audit section 2, structural problem 2: "opt-in unknown" is null, not false; a true carries its
    source."""
    for code, entry in RAW["states"].items():
        assert entry["self_funded_opt_in_allowed"] in (True, None), code
        if entry["self_funded_opt_in_allowed"]:
            assert entry.get("self_funded_opt_in_source"), code
    assert {c for c, e in RAW["states"].items() if e["self_funded_opt_in_allowed"]} == {
        "GA",
        "NJ",
        "VA",
        "WA",
    }


def test_row_7_laws_reaching_self_funded_governmental_plans_are_data_with_sources() -> None:
    """audit row 7: at least WA, VA and TX reach self-funded governmental plans directly."""
    table = load_state_laws()
    for code in ("WA", "VA", "TX"):
        law = table.get(code)
        assert law is not None and law.applies_to_self_funded_governmental is True, code
    for code, entry in RAW["states"].items():
        assert entry["applies_to_self_funded_governmental"] in (True, False, None), code
        if entry["applies_to_self_funded_governmental"]:
            assert entry.get("self_funded_governmental_source"), code


def test_row_6_maryland_all_payer_model_is_separate_and_for_hospital_facility_items() -> None:
    """audit row 6: the APMA is its own record (hospital facility items, every plan type) next to
    Maryland's specified state law."""
    md = load_state_laws().get("MD")
    assert md is not None and md.all_payer_model is not None
    assert md.all_payer_model.items == ["hospital_facility"]
    assert "300gg-111(a)(3)(K)(iii)" in md.all_payer_model.source
    assert "fully_insured_group" in md.applies_to


def test_row_8_alaska_is_listed_for_insured_and_individual_coverage() -> None:
    """audit row 8: Alaska (fully insured, individual) with its source."""
    ak = load_state_laws().get("AK")
    assert ak is not None
    assert ak.applies_to == ["fully_insured_group", "individual_market"]
    assert "Commonwealth Fund" in ak.source and not ak.verified


def test_reviewed_states_record_what_was_found() -> None:
    """audit section 2: DE, MI, NE, NV, NH, NM and OR were looked up; each entry names statute or
    regulator text (or says nothing was found) and the doc has a row for every state."""
    doc = DOC.read_text(encoding="utf-8")
    for code in REVIEWED:
        src = RAW["states"][code]["source"]
        assert re.search(r"\d", src), code  # a statute, chapter or bill number
    for code in RAW["states"]:
        assert f"| {code} |" in doc, code


def test_a_table_of_the_earlier_shape_still_loads(tmp_path: Path) -> None:
    """Backward compatibility: ``all_payer_model: true|false`` and a boolean opt-in still load."""
    path = tmp_path / "old.json"
    path.write_text(
        json.dumps(
            {
                "source": "old",
                "as_of": "2026-01-01",
                "confidence": "L",
                "note": "",
                "states": {
                    "MD": {
                        "name": "Maryland",
                        "applies_to": ["fully_insured_group"],
                        "self_funded_opt_in_allowed": False,
                        "all_payer_model": True,
                    },
                    "TX": {
                        "name": "Texas",
                        "applies_to": ["fully_insured_group"],
                        "self_funded_opt_in_allowed": False,
                        "all_payer_model": False,
                    },
                },
            }
        )
    )
    table = StateLawTable.model_validate(json.loads(path.read_text()))
    md, tx = table.get("MD"), table.get("TX")
    assert md is not None and md.all_payer_model is not None
    assert md.all_payer_model.items == ["hospital_facility"]
    assert tx is not None and tx.all_payer_model is None and not tx.verified
