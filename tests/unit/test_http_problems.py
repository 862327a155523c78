from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from shared.http import FastJSONRoute, Problem, install_healthz, install_problem_handlers


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


class Numbered(BaseModel):
    n: int


echo_router = APIRouter(route_class=FastJSONRoute)


@echo_router.post("/echo")
async def echo(body: Numbered) -> dict[str, int]:
    return {"n": body.n}


async def test_orjson_bodies_answer_as_the_standard_library_did() -> None:
    """FastJSONRoute parses bodies with orjson; what orjson refuses and json accepted (a huge
    integer, NaN) gets the old answer, and a broken body is still a problem, never a 500."""
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(echo_router)
    headers = {"content-type": "application/json", "authorization": "Bearer x"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post("/echo", content=b'{"n": 7}', headers=headers)).json() == {"n": 7}
        huge = 10**30
        r = await client.post("/echo", content=b'{"n": %d}' % huge, headers=headers)
        assert r.status_code == 200 and r.json() == {"n": huge}
        r = await client.post("/echo", content=b'{"n": NaN}', headers=headers)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert "n" in r.text
        r = await client.post("/echo", content=b'{"n": ', headers=headers)  # not JSON: 400, as before
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
