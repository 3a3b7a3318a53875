"""The admin fault routes: every one behind the admin key; injected request failures."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from services.common.credentials import Credentials
from services.scheduler import auth
from services.scheduler.admin import InjectedFailures, admin_router
from services.scheduler.fault_book import FaultBook
from services.scheduler.openai_api import ApiError
from supernode.engine.registry import WorkerRegistry

ROUTES = [("GET", "/admin/faults", None), ("DELETE", "/admin/faults", None),
          ("DELETE", "/admin/faults/f1", None),
          ("POST", "/admin/faults", {"kind": "fail_requests", "count": 1})]
ADMIN = Credentials(api_keys=(("k-tenant", "team-a"),), admin_key="k-admin")


def make_app(credentials: Credentials = ADMIN) -> FastAPI:
    """The admin router and injected failures composed as `build_app` does, with sec's guard."""
    app = FastAPI()
    book = FaultBook(WorkerRegistry(3.0), CollectorRegistry())
    app.include_router(admin_router(book, auth.require_admin))
    app.add_middleware(InjectedFailures, book=book)
    auth.install(app, auth.ApiKeys(credentials))
    app.add_exception_handler(ApiError, lambda request, exc: exc.response())

    @app.post("/v1/completions")
    async def completions() -> JSONResponse:
        return JSONResponse({"ok": True})

    return app


def client(app: FastAPI, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scheduler",
                             **kwargs)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize("method, path, body", ROUTES)
async def test_every_admin_route_needs_the_admin_key(method, path, body) -> None:
    """With an admin key configured, every fault route answers 401 without a key or with a
    wrong one and 403 with a tenant's API key, in OpenAI error JSON, before the route runs;
    the admin key gets through."""
    app = make_app()
    for headers, status in (({}, 401), (bearer("wrong"), 401), (bearer("k-tenant"), 403)):
        async with client(app, headers=headers) as c:
            r = await c.request(method, path, json=body)
        assert r.status_code == status and r.json()["error"]["code"] == status
    async with client(app, headers=bearer("k-admin")) as c:
        assert (await c.get("/admin/faults")).json() == {"faults": []}  # nothing injected
        assert (await c.request(method, path, json=body)).status_code in (200, 201, 404)


async def test_a_caller_without_an_api_key_cannot_use_up_injected_failures() -> None:
    """The API-key check runs before the injected failures: a refused caller gets 401 and the
    fault's count is left for real traffic."""
    app = make_app()
    async with client(app, headers=bearer("k-admin")) as c:
        await c.post("/admin/faults", json={"kind": "fail_requests", "status": 503, "count": 1})
    async with client(app) as c:
        assert (await c.post("/v1/completions", json={})).status_code == 401
    async with client(app, headers=bearer("k-tenant")) as c:
        assert (await c.post("/v1/completions", json={})).status_code == 503
        assert (await c.post("/v1/completions", json={})).json() == {"ok": True}


async def test_injected_failures_answer_generation_requests_only_and_then_stop() -> None:
    """A fail_requests fault answers POSTs to the generation routes with its status, OpenAI
    error JSON and Retry-After; other routes are untouched; after `count` it is gone."""
    async with client(make_app(), headers=bearer("k-admin")) as c:
        created = await c.post("/admin/faults", json={"kind": "fail_requests", "status": 503,
                                                      "count": 2})
        assert created.status_code == 201 and created.json()["requests_left"] == 2
        assert (await c.get("/admin/faults")).status_code == 200
        first = await c.post("/v1/completions", json={})
        assert first.status_code == 503 and first.headers["retry-after"] == "1"
        assert "injected fault" in first.json()["error"]["message"]
        assert (await c.post("/v1/completions", json={})).status_code == 503
        assert (await c.post("/v1/completions", json={})).json() == {"ok": True}
        assert (await c.get("/admin/faults")).json() == {"faults": []}


def test_admin_routes_stay_out_of_the_openapi_schema() -> None:
    """Fuzzers that follow the schema never reach the fault routes."""
    assert not [p for p in make_app().openapi()["paths"] if p.startswith("/admin")]
