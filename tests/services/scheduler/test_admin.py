"""The admin fault routes: every one behind the guard it is given; injected request failures."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from services.scheduler.admin import InjectedFailures, admin_router, loopback_only
from services.scheduler.fault_book import FaultBook
from services.scheduler.openai_api import ApiError
from supernode.engine.registry import WorkerRegistry

ROUTES = [("GET", "/admin/faults", None), ("DELETE", "/admin/faults", None),
          ("DELETE", "/admin/faults/f1", None),
          ("POST", "/admin/faults", {"kind": "fail_requests", "count": 1})]


async def header_guard(request: Request) -> None:
    if request.headers.get("authorization") != "Bearer k":
        raise ApiError(401, "admin key required")


def make_app(guard=loopback_only) -> FastAPI:
    app = FastAPI()
    book = FaultBook(WorkerRegistry(3.0), CollectorRegistry())
    app.include_router(admin_router(book, guard))
    app.add_middleware(InjectedFailures, book=book)
    app.add_exception_handler(ApiError, lambda request, exc: exc.response())

    @app.post("/v1/completions")
    async def completions() -> JSONResponse:
        return JSONResponse({"ok": True})

    return app


def client(app: FastAPI, host: str, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 5000)),
                             base_url="http://scheduler", **kwargs)


@pytest.mark.parametrize("method, path, body", ROUTES)
async def test_the_interim_guard_refuses_non_loopback_callers(method, path, body) -> None:
    """With the loopback guard, a caller from another address gets 403 OpenAI error JSON on
    every admin route, before the route runs."""
    async with client(make_app(), "10.1.2.3") as c:
        r = await c.request(method, path, json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == 403


@pytest.mark.parametrize("method, path, body", ROUTES)
async def test_a_given_guard_protects_every_route(method, path, body) -> None:
    """`admin_router` applies the guard it is passed (the admin-key check) to every route."""
    app = make_app(header_guard)
    async with client(app, "127.0.0.1") as c:
        assert (await c.request(method, path, json=body)).status_code == 401
    async with client(app, "127.0.0.1", headers={"authorization": "Bearer k"}) as c:
        assert (await c.request(method, path, json=body)).status_code in (200, 201, 404)


async def test_injected_failures_answer_generation_requests_only_and_then_stop() -> None:
    """A fail_requests fault answers POSTs to the generation routes with its status, OpenAI
    error JSON and Retry-After; other routes are untouched; after `count` it is gone."""
    async with client(make_app(), "127.0.0.1") as c:
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


@pytest.mark.parametrize("host, allowed", [("127.0.0.1", True), ("127.0.0.9", True),
                                           ("::1", True), ("::ffff:127.0.0.1", True),
                                           ("192.168.1.4", False), ("testclient", False)])
async def test_loopback_means_this_machine(host: str, allowed: bool) -> None:
    """IPv4 and IPv6 loopback (mapped too) pass the interim guard; other addresses do not."""
    async with client(make_app(), host) as c:
        assert ((await c.get("/admin/faults")).status_code == 200) is allowed


def test_admin_routes_stay_out_of_the_openapi_schema() -> None:
    """Fuzzers that follow the schema never reach the fault routes."""
    assert not [p for p in make_app().openapi()["paths"] if p.startswith("/admin")]
