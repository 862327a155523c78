"""The wheel (and so the Docker image, which installs it) carries every file the code reads at run
time besides Python modules: the notice and alert templates, the rules data, the migrations."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DATA = (
    "services/negotiation/templates/*.j2",
    "services/notifier/templates/*.j2",
    "shared/rules/data/*.json",
    "deploy/migrations/versions/*.py",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of the sources (setuptools writes build/ next to them)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("shared", "services", "deploy"):
        shutil.copytree(ROOT / package, src / package, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), "."],
        cwd=src,
        check=True,
        timeout=180,
    )
    (built,) = out.glob("idrflow-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


RENDER = """
import sys, uuid
from datetime import date
from decimal import Decimal
import services.negotiation.service as svc
assert svc.__file__.startswith(sys.argv[1]), svc.__file__  # the installed copy, not the source tree
from services.negotiation.schemas import NoticeRequest
from shared.events import ClaimAdjudicated, ClaimLine
facts = ClaimAdjudicated(
    claim_id="CLM-1001", event_sequence=1, source_system="ehr", payer_name="Acme Health Plan",
    plan_type="self_insured_erisa", provider_npi="1234567893", provider_tin="123456789",
    provider_name="Metro Emergency Physicians", service_category="emergency", state="TX",
    initial_payment_received_on=date(2026, 11, 2),
    lines=[ClaimLine(line_number=1, service_code="99285", code_system="CPT", service_date=date(2026, 9, 28),
                     billed=Decimal("2400.00"), paid=Decimal("350.00"))],
)
req = NoticeRequest.model_validate(
    {"offer": {"1": "1500.00"}, "sender": {"name": "Jane", "email": "jane@billing.example"}}
)
content = svc.notice_content(facts, req, "idr@acme.example", uuid.uuid4(), date(2026, 11, 23))
pdf = svc.render_pdf(svc.render_html(content))
assert pdf.startswith(b"%PDF") and len(pdf) > 5000, len(pdf)
print("rendered", len(pdf))
"""


def test_the_installed_wheel_renders_an_open_negotiation_notice(wheel: Path, tmp_path: Path) -> None:
    """What the image does at its first notice: the package as installed from the wheel (not the
    source tree) finds its templates and WeasyPrint renders the PDF."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    done = subprocess.run(
        [sys.executable, "-c", RENDER, str(site)],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("rendered")


@pytest.mark.parametrize("pattern", PACKAGE_DATA)
def test_every_data_file_is_in_the_wheel(wheel_files: set[str], pattern: str) -> None:
    expected = {p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern)}
    assert expected, f"nothing matches {pattern} in the source tree"
    assert expected <= wheel_files, f"missing from the wheel: {sorted(expected - wheel_files)}"


def test_the_notice_templates_are_there(wheel_files: set[str]) -> None:
    """The files the negotiation service renders notices from (the image could not issue them)."""
    assert {
        "services/negotiation/templates/notice.html.j2",
        "services/negotiation/templates/initiation.html.j2",
        "deploy/alembic.ini",
    } <= wheel_files


def test_the_image_installs_the_wheel_and_the_pdf_libraries() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "pip wheel" in dockerfile and "pip install /wheels/idrflow-" in dockerfile
    for library in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz0b", "libfontconfig1"):
        assert library in dockerfile, library
