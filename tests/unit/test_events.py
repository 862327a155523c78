"""Event contracts: each model's JSON schema is compared with a committed snapshot, so a breaking
change cannot slip in unnoticed (regenerate with IDRFLOW_UPDATE_SNAPSHOTS=1 and review the diff)."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from shared.events import REGISTRY, ClaimAdjudicated, DeadlineMissed, Envelope, deterministic_event_id

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.mark.parametrize("event_type", sorted(REGISTRY))
def test_schema_matches_snapshot(event_type: str) -> None:
    model = REGISTRY[event_type]
    schema = json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
    path = SNAPSHOTS / f"{event_type}.v{model.schema_version}.json"
    if os.environ.get("IDRFLOW_UPDATE_SNAPSHOTS") == "1":
        path.write_text(schema)
    assert path.exists(), f"no snapshot for {event_type}; run with IDRFLOW_UPDATE_SNAPSHOTS=1"
    assert schema == path.read_text(), f"{event_type} schema changed: additive changes keep the version"


def test_no_event_model_has_a_place_for_patient_data() -> None:
    for model in REGISTRY.values():
        fields = set(model.model_fields)
        assert not {f for f in fields if "patient" in f or "member" in f or "birth" in f}, model


def test_envelope_round_trip_and_deterministic_ids() -> None:
    payload = DeadlineMissed(
        deadline_name="open_negotiation_initiation_deadline",
        due_on=date(2026, 12, 15),
        payer_name="Acme",
        stage="forfeited",
        consequence="late",
    )
    env = Envelope.wrap(payload, tenant_id="t", claim_id="c", event_id=deterministic_event_id("a", "b"))
    back = Envelope.from_bytes(env.to_bytes())
    assert back == env and back.parse_payload() == payload
    assert (
        deterministic_event_id("a", "b")
        == deterministic_event_id("a", "b")
        != deterministic_event_id("a", "c")
    )


def test_unknown_event_types_and_extra_fields_are_refused() -> None:
    env = Envelope.wrap(
        DeadlineMissed(
            deadline_name="x", due_on=date(2026, 1, 2), payer_name="p", stage="s", consequence="c"
        ),
        tenant_id="t",
        claim_id="c",
    )
    with pytest.raises(ValueError, match="unknown event type"):
        env.model_copy(update={"event_type": "Nope"}).parse_payload()
    with pytest.raises(ValueError):
        ClaimAdjudicated.model_validate({"claim_id": "c", "patient_name": "x"})
