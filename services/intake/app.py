"""FastAPI factory of the intake service."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake.models import outbox
from services.intake.routes import router
from shared.db import database_ready, get_engine
from shared.http import install_healthz, install_problem_handlers
from shared.metrics import install_metrics, outbox_lag


def create_app() -> FastAPI:
    app = FastAPI(
        title="idrflow intake", version="0.1.0", description="Claim events in: JSON (X12 and FHIR next)."
    )
    install_problem_handlers(app)
    install_metrics(app, "intake", [outbox_lag(outbox)], engine=get_engine)
    install_healthz(app, {"postgresql": database_ready})
    app.include_router(router)
    return app
