from __future__ import annotations

import httpx
from fastapi import FastAPI

from shared.http import Problem, install_healthz, install_problem_handlers


async def test_healthz_is_503_naming_the_dependency_that_is_down() -> None:
    app = FastAPI()

    async def up() -> bool:
        return True

    async def down() -> bool:
        return False

    install_healthz(app, {"postgresql": up, "kafka": down})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "checks": {"postgresql": "ok", "kafka": "down"}}


async def test_problems_and_unknown_routes_are_rfc9457() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise Problem(409, "thing-taken", "Taken", "That thing is taken.", field="thing")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/boom")
        missing = await client.get("/nowhere")
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "https://idrflow.dev/problems/thing-taken",
        "title": "Taken",
        "status": 409,
        "detail": "That thing is taken.",
        "instance": "/boom",
        "errors": [{"field": "thing", "reason": "That thing is taken."}],
    }
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


async def test_healthz_is_503_when_a_background_worker_died() -> None:
    """issue 10: /healthz reports the worker loop, not only the dependencies."""
    import asyncio

    import httpx
    from fastapi import FastAPI

    from shared.http import install_healthz, task_running

    app = FastAPI()
    install_healthz(app, {"worker": lambda: task_running(app, "worker_task")})

    async def crash() -> None:
        raise RuntimeError("worker died")

    app.state.worker_task = asyncio.create_task(crash())
    await asyncio.sleep(0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
        r = await client.get("/healthz")
    assert r.status_code == 503 and r.json()["checks"]["worker"] == "down"
    app.state.worker_task.exception()  # retrieved: no "never retrieved" warning
