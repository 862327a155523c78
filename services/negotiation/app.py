"""FastAPI factory of the negotiation service.

So far it answers health only: the open-negotiation workflow, notices and offer endpoints arrive
with the lifecycle issue.
"""

from __future__ import annotations

from fastapi import FastAPI

from shared.db import database_ready
from shared.http import install_healthz, install_problem_handlers
from shared.temporal import temporal_ready


def create_app() -> FastAPI:
    app = FastAPI(
        title="idrflow negotiation", version="0.1.0", description="Open negotiation (health only so far)."
    )
    install_problem_handlers(app)

    async def temporal() -> bool:
        return await temporal_ready(None)

    install_healthz(app, {"postgresql": database_ready, "temporal": temporal})
    return app
