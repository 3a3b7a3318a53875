"""The scheduler's HTTP authentication, in process: API keys on /v1/*, the admin key on the
operator routes, tenants' cache namespaces, and OpenAI's error JSON for every refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from services.common.credentials import Credentials
from services.scheduler import auth
from services.scheduler.app import FrontEnd, build_app
from services.scheduler.fault_book import FaultBook
from services.scheduler.flow import RequestFlow
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.token_streams import TokenStreams
from supernode.clock import WallClock
from supernode.config import ClusterConfig
from supernode.engine.registry import WorkerKind, WorkerRegistry
from supernode.lifecycle.cache import cache_namespace
from supernode.lifecycle.scheduler import Lifecycle
from supernode.tokenizer import make_tokenizer

MODEL = "deepseek-r1"
KEYS = Credentials(api_keys=(("k-default", ""), ("k-a", "team-a"), ("k-b", "team-b")),
                   admin_key="k-admin")
ADMIN_ROUTES = ("/workers", "/sd/targets", "/metrics", "/admin/faults")


def front_end(credentials: Credentials) -> FrontEnd:
    prometheus = CollectorRegistry()
    metrics = SchedulerMetrics(prometheus, MODEL, 4096)
    registry = WorkerRegistry(lease_s=3.0)
    flow = RequestFlow(Lifecycle(ClusterConfig(), registry), TokenStreams("test"),
                       WallClock(1.0), metrics)
    return FrontEnd(model_name=MODEL, max_model_len=4096,
                    tokenizer=make_tokenizer(None, 129_280, MODEL), flow=flow,
                    registry=registry, metrics=metrics, prometheus=prometheus,
                    created=0, faults=FaultBook(registry, prometheus),
                    expected_workers={WorkerKind.PREFILL: 1, WorkerKind.DECODE: 1},
                    instance_id="test", api_keys=auth.ApiKeys(credentials))


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://scheduler")


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
async def guarded() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(build_app(front_end(KEYS))) as client:
        yield client


def assert_openai_error(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind and error["code"] == status and error["message"]


async def test_v1_needs_a_configured_key(guarded: httpx.AsyncClient) -> None:
    """/v1/* answers 401 (OpenAI error JSON, Bearer challenge) without a key, with a wrong one
    or with another scheme; any configured key, or the admin key, passes."""
    for headers in ({}, bearer("k-wrong"), bearer(""), {"authorization": "Basic k-default"},
                    bearer("k-defaultx")):
        response = await guarded.get("/v1/models", headers=headers)
        assert_openai_error(response, 401, "AuthenticationError")
        assert response.headers["www-authenticate"] == "Bearer"
    for key in ("k-default", "k-a", "k-b", "k-admin"):
        response = await guarded.get("/v1/models", headers=bearer(key))
        assert response.status_code == 200 and response.json()["data"][0]["id"] == MODEL


async def test_post_routes_are_refused_before_the_body_is_read(
        guarded: httpx.AsyncClient) -> None:
    """A completion without a key gets 401 even when its body is invalid; with a key the same
    body reaches validation (400)."""
    response = await guarded.post("/v1/completions", content=b"{not json")
    assert_openai_error(response, 401, "AuthenticationError")
    response = await guarded.post("/v1/completions", content=b"{not json",
                                  headers=bearer("k-a"))
    assert response.status_code == 400


async def test_health_is_always_open(guarded: httpx.AsyncClient) -> None:
    """Orchestrators probe /health and /ready without credentials (503 here: no workers
    yet)."""
    response = await guarded.get("/health")
    assert response.status_code == 503 and response.json()["status"] == "degraded"
    response = await guarded.get("/ready")
    assert response.status_code == 503 and response.json()["ready"] is False


@pytest.mark.parametrize("path", ADMIN_ROUTES)
async def test_operator_routes_need_the_admin_key(guarded: httpx.AsyncClient, path: str) -> None:
    """Without a key or with a wrong one: 401; with a tenant's key: 403; with the admin key:
    200."""
    for headers in ({}, bearer("k-wrong")):
        assert_openai_error(await guarded.get(path, headers=headers), 401,
                            "AuthenticationError")
    for key in ("k-default", "k-a"):
        assert_openai_error(await guarded.get(path, headers=bearer(key)), 403,
                            "PermissionDeniedError")
    assert (await guarded.get(path, headers=bearer("k-admin"))).status_code == 200


@pytest.mark.parametrize("credentials", [Credentials(), Credentials(api_keys=(("k", ""),))])
async def test_without_an_admin_key_operator_routes_stay_open(credentials: Credentials) -> None:
    """No admin key configured: the operator routes answer anyone (as vLLM's /metrics)."""
    async with client_for(build_app(front_end(credentials))) as client:
        for path in ADMIN_ROUTES:
            assert (await client.get(path)).status_code == 200, path


async def test_without_keys_v1_is_open() -> None:
    """No API key configured: /v1/* needs none, whatever Authorization a client sends."""
    async with client_for(build_app(front_end(Credentials(admin_key="adm")))) as client:
        for headers in ({}, bearer("anything")):
            assert (await client.get("/v1/models", headers=headers)).status_code == 200


async def test_openai_client_sees_authentication_errors(guarded: httpx.AsyncClient) -> None:
    """The official client raises AuthenticationError on a wrong key and lists models with the
    right one."""
    wrong = openai.AsyncOpenAI(base_url="http://scheduler/v1", api_key="k-wrong",
                               max_retries=0, http_client=guarded)
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        await wrong.models.list()
    right = openai.AsyncOpenAI(base_url="http://scheduler/v1", api_key="k-a", max_retries=0,
                               http_client=guarded)
    assert [m.id async for m in right.models.list()] == [MODEL]


def namespace_app(credentials: Credentials) -> FastAPI:
    """An app with the auth installed and one route reporting the request's namespace."""
    app = FastAPI()
    auth.install(app, auth.ApiKeys(credentials))

    @app.get("/v1/namespace")
    async def namespace(request: Request) -> str:
        return cache_namespace(MODEL, auth.tenant_namespace(request))

    @app.get("/admin/whoami")
    async def whoami(caller: auth.AdminCaller) -> str:
        return caller.tenant or "(default)"

    return app


async def test_a_tenant_key_selects_its_namespace_and_the_header_cannot() -> None:
    """Each tenant's key maps to `{model}/{tenant}` and the namespace header is ignored for
    tenants; only the admin key may pick another namespace with it."""
    header = {auth.NAMESPACE_HEADER: "team-b"}
    async with client_for(namespace_app(KEYS)) as client:
        async def namespace(key: str, extra: dict[str, str] | None = None) -> str:
            response = await client.get("/v1/namespace", headers={**bearer(key), **(extra or {})})
            assert response.status_code == 200
            return response.json()

        assert await namespace("k-a") == f"{MODEL}/team-a"
        assert await namespace("k-b") == f"{MODEL}/team-b"
        assert await namespace("k-default") == f"{MODEL}/"
        assert await namespace("k-a", header) == f"{MODEL}/team-a"
        assert await namespace("k-default", header) == f"{MODEL}/"
        assert await namespace("k-admin") == f"{MODEL}/"
        assert await namespace("k-admin", header) == f"{MODEL}/team-b"


async def test_open_server_honours_the_namespace_header() -> None:
    """With no key of any kind, everyone may pick a namespace (there is nothing to isolate);
    with only an admin key, an anonymous caller may not."""
    header = {auth.NAMESPACE_HEADER: "exp-1"}
    async with client_for(namespace_app(Credentials())) as client:
        assert (await client.get("/v1/namespace", headers=header)).json() == f"{MODEL}/exp-1"
    async with client_for(namespace_app(Credentials(admin_key="adm"))) as client:
        assert (await client.get("/v1/namespace", headers=header)).json() == f"{MODEL}/"
        response = await client.get("/v1/namespace", headers={**header, **bearer("adm")})
        assert response.json() == f"{MODEL}/exp-1"


async def test_require_admin_is_a_reusable_dependency() -> None:
    """A route declaring `Depends(require_admin)` gets the admin principal, and refuses others
    as the built-in operator routes do."""
    async with client_for(namespace_app(KEYS)) as client:
        assert (await client.get("/admin/whoami", headers=bearer("k-admin"))).json() \
            == "(default)"
        assert (await client.get("/admin/whoami", headers=bearer("k-a"))).status_code == 403
        assert (await client.get("/admin/whoami")).status_code == 401


async def test_setting_a_pool_size_needs_the_admin_key(guarded: httpx.AsyncClient) -> None:
    """PUT /admin/pools/{pool} moves what /health expects: 401 / 403 / 200 like the others."""
    body = {"instances": 1}
    assert_openai_error(await guarded.put("/admin/pools/decode", json=body), 401,
                        "AuthenticationError")
    assert_openai_error(await guarded.put("/admin/pools/decode", json=body,
                                          headers=bearer("k-a")), 403, "PermissionDeniedError")
    assert (await guarded.put("/admin/pools/decode", json=body,
                              headers=bearer("k-admin"))).status_code == 200
