"""FastAPI factory of the intake service."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake.ingest_routes import router as ingest_router
from services.intake.models import outbox
from services.intake.routes import router
from shared.db import database_ready, get_engine
from shared.http import install_healthz, install_problem_handlers
from shared.metrics import install_metrics, outbox_lag


def create_app() -> FastAPI:
    app = FastAPI(
        title="idrflow intake",
        version="0.1.0",
        description="Claims in: canonical JSON (one or a batch), X12 837 claims, X12 835 remittances and "
        "FHIR ExplanationOfBenefit resources, matched to the claims idrflow tracks.",
    )
    install_problem_handlers(app)
    install_metrics(app, "intake", [outbox_lag(outbox)], engine=get_engine)
    install_healthz(app, {"postgresql": database_ready})
    app.include_router(router)
    app.include_router(ingest_router)
    return app
