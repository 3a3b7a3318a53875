"""The control API of `supernode up`: bearer auth, routes, errors as OpenAI error JSON."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from services.up.control import ControlServer, control_app
from services.up.controller import UpController
from tests.services.up.fakes import FakeRuntime

TOKEN, ADMIN = "control-token", "admin-key"


@pytest.fixture
def client() -> TestClient:
    controller = UpController(FakeRuntime({"decode": 1, "prefill": 1}, can_disconnect=False),
                              True, lambda message: None, CollectorRegistry())
    return TestClient(control_app(controller, (TOKEN, ADMIN)))


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize("headers", [{}, auth("wrong"), {"authorization": f"Basic {TOKEN}"}])
def test_every_route_needs_the_token_or_the_admin_key(client: TestClient, headers) -> None:
    """401 with WWW-Authenticate and AuthenticationError JSON, and nothing changes."""
    for method, path in [("GET", "/instances"), ("PUT", "/pools/decode"),
                         ("POST", "/instances/decode-0/kill"), ("GET", "/metrics"),
                         ("DELETE", "/faults")]:
        r = client.request(method, path, headers=headers, json={"instances": 3})
        assert r.status_code == 401, (method, path)
        assert r.json()["error"]["type"] == "AuthenticationError"
        assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/instances", headers=auth(TOKEN)).json()["pools"]["decode"] == 1


def test_scale_and_faults_through_the_api(client: TestClient) -> None:
    """PUT /pools/decode scales (the admin key works too); a pause is listed, then cleared."""
    r = client.put("/pools/decode", headers=auth(ADMIN), json={"instances": 2})
    assert r.status_code == 200 and r.json()["started"] == ["decode-1"]
    r = client.post("/instances/decode-1/pause", headers=auth(TOKEN), json={"duration_s": 30})
    assert r.status_code == 200 and r.json()["kind"] == "pause"
    assert [f["target"] for f in client.get("/faults", headers=auth(TOKEN)).json()["faults"]] \
        == ["decode-1"]
    assert client.delete(f"/faults/{r.json()['id']}", headers=auth(TOKEN)).status_code == 200
    assert client.delete("/faults/r99", headers=auth(TOKEN)).status_code == 404
    text = client.get("/metrics", headers=auth(TOKEN)).text
    assert 'supernode_runtime_instances{role="decode",state="running"} 2.0' in text
    assert 'supernode_runtime_faults_injected_total{kind="pause"} 1.0' in text


@pytest.mark.parametrize("method, path, body, status, words", [
    ("PUT", "/pools/decode", {"instances": "many"}, 400, "instances"),
    ("PUT", "/pools/decode", {"instances": 2, "extra": 1}, 400, "extra"),
    ("PUT", "/pools/ems", {"instances": 2}, 400, "pool must be one of"),
    ("POST", "/instances/decode-9/kill", None, 404, "decode-9"),
    ("POST", "/instances/decode-0/explode", None, 400, "kind must be one of"),
    ("POST", "/instances/decode-0/disconnect", {"duration_s": 5}, 409, "not here"),
])
def test_bad_requests_get_openai_error_json(client: TestClient, method, path, body, status,
                                            words) -> None:
    r = client.request(method, path, headers=auth(TOKEN), json=body)
    assert r.status_code == status and words in r.json()["error"]["message"], r.json()


def test_the_server_listens_on_loopback_only_and_stops() -> None:
    """ControlServer binds 127.0.0.1 at a free port, serves, and stops."""
    controller = UpController(FakeRuntime({"decode": 1}), True, lambda m: None,
                              CollectorRegistry())
    server = ControlServer(controller, (TOKEN, ""))
    server.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{server.url}/instances", headers=auth(TOKEN)).status_code == 200
        # the unset admin key ("") never matches an empty bearer
        assert httpx.get(f"{server.url}/instances",
                         headers={"authorization": "Bearer"}).status_code == 401
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/instances", timeout=2)
