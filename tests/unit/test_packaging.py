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
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
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
    (wheel,) = out.glob("idrflow-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


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
