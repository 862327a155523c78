"""The workers' sandbox passes the workflow modules through (imported once, not per workflow), so
nothing in them may rely on being completed lazily inside a workflow."""

from __future__ import annotations

import sys

import pytest
from pydantic import BaseModel

from services.dispute.worker import WORKFLOWS
from services.negotiation.workflows import OpenNegotiationWorkflow
from shared.temporal import workflow_runner

pytestmark = pytest.mark.unit


def test_every_model_the_workflows_import_is_complete_at_import() -> None:
    """A pydantic model naming a class defined later in its module completes itself on first use;
    inside a workflow, with its module passed through, it could not (AlertRequest did exactly that)."""
    incomplete = [
        f"{name}.{value.__name__}"
        for name, module in list(sys.modules.items())
        if name.startswith(("services.", "shared."))
        for value in list(vars(module).values())
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == name
        and not value.__pydantic_complete__
    ]
    assert incomplete == []


def test_the_runner_passes_the_workflow_modules_through() -> None:
    runner = workflow_runner(*WORKFLOWS, OpenNegotiationWorkflow)
    modules = {w.__module__ for w in (*WORKFLOWS, OpenNegotiationWorkflow)}
    assert modules <= runner.restrictions.passthrough_modules
