"""The ``idrflow deadlines`` and ``idrflow calendar`` contracts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app

runner = CliRunner()


def run(stdin: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["deadlines", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_each_trigger_gives_its_part_a_deadlines_and_the_fee() -> None:
    code, out, _ = run(
        json.dumps(
            {
                "initial_payment_received_on": "2026-11-02",
                "open_negotiation_started_on": "2026-11-16",
                "idr_initiated_on": "2027-01-05",
                "idre_selected_on": "2027-01-12",
                "determination_on": "2027-03-01",
                "bill_sent_on": "2026-10-01",
                "batched": False,
            }
        )
    )
    assert code == 0
    got = json.loads(out)
    assert got["open_negotiation_initiation_deadline"] == "2026-12-15"
    assert got["administrative_fee_per_party"] == 15 and isinstance(got["administrative_fee_per_party"], int)
    assert set(got) >= {
        "open_negotiation_period_end",
        "idr_initiation_window_opens",
        "idr_initiation_deadline",
        "idre_joint_selection_deadline",
        "departments_idre_selection_deadline",
        "offer_and_fee_deadline",
        "determination_deadline",
        "payment_deadline",
        "idre_fee_refund_deadline",
        "cooling_off_ends",
        "post_cooling_off_initiation_deadline",
    }


def test_only_given_triggers_are_answered_and_the_fee_only_with_initiation() -> None:
    code, out, _ = run('{"open_negotiation_started_on": "2023-03-06"}')
    assert code == 0 and json.loads(out) == {
        "open_negotiation_period_end": "2023-04-14",
        "idr_initiation_window_opens": "2023-04-17",
        "idr_initiation_deadline": "2023-04-20",
    }
    code, out, _ = run('{"idr_initiated_on": "2024-01-22"}')
    assert json.loads(out)["administrative_fee_per_party"] == 115


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ('{"initial_payment_received_on": "2026-11-02", "color": "red"}', "color: unknown key"),
        ('{"idr_initiated_on": "2026-02-30"}', "idr_initiated_on"),
        ('{"idr_initiated_on": "next tuesday"}', "idr_initiated_on"),
        ('{"idr_initiated_on": 20260105}', "idr_initiated_on"),
        ('{"open_negotiation_started_on": "2026-12-01", "idr_initiated_on": "2026-11-30"}', "before"),
        ('{"initial_payment_received_on": "2026-11-02"', "not valid JSON"),
        ("[]", "one JSON object"),
        ("", "nothing"),
        ('{"batched": "yes"}', "batched"),
        ('{"idr_initiated_on": "2021-05-01"}', "no fees before"),
    ],
)
def test_bad_input_is_a_clear_message_on_stderr_and_exit_2(stdin: str, message: str) -> None:
    code, out, err = run(stdin)
    assert code == 2, (out, err)
    assert out == ""
    assert message in err and err.startswith("idrflow: ")


def test_explain_gives_rules_and_reasons() -> None:
    code, out, _ = run('{"initial_payment_received_on": "2026-11-02"}', "--explain")
    d = json.loads(out)["open_negotiation_initiation_deadline"]
    assert code == 0 and d["rule_id"] == "D1" and "skipped 2026-11-11 Veterans Day" in d["explanation"]


def test_an_overrides_file_moves_a_deadline(tmp_path: Path) -> None:
    f = tmp_path / "overrides.json"
    f.write_text(
        json.dumps(
            {
                "overrides": [
                    {"kind": "closure", "start": "2026-12-14", "end": "2026-12-14", "name": "Portal outage"},
                ]
            }
        )
    )
    code, out, _ = run('{"initial_payment_received_on": "2026-11-02"}', "--overrides", str(f))
    assert code == 0 and json.loads(out)["open_negotiation_initiation_deadline"] == "2026-12-16"
    f.write_text(
        '{"overrides": [{"kind": "closure", "start": "2026-12-14", "end": "2026-12-01", "name": "x"}]}'
    )
    code, _, err = run('{"initial_payment_received_on": "2026-11-02"}', "--overrides", str(f))
    assert code == 2 and "ends before it starts" in err


def test_calendar_lists_the_year_with_names() -> None:
    result = runner.invoke(app, ["calendar", "--year", "2027", "--json"])
    days = {d["date"]: d["name"] for d in json.loads(result.stdout)}
    assert days["2027-06-18"].startswith("Juneteenth") and days["2027-12-31"].startswith("New Year")
    assert len(days) == 12
    table = runner.invoke(app, ["calendar", "--year", "2027"])
    assert "Thanksgiving" in table.stdout
    assert runner.invoke(app, ["calendar", "--year", "1990"]).exit_code == 2


def test_the_installed_command_reads_stdin() -> None:
    exe = Path(sys.executable).parent / "idrflow"
    done = subprocess.run(
        [str(exe), "deadlines"],
        input='{"idr_initiated_on": "2026-06-11"}',
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["administrative_fee_per_party"] == 15
    bad = subprocess.run(
        [str(exe), "deadlines"], input='{"x": 1}', capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "x: unknown key" in bad.stderr
