"""The time-skipping server and workers of the workflow tests, for the state-blob test."""

from __future__ import annotations

from tests.workflow.conftest import env, rec

__all__ = ["env", "rec"]
