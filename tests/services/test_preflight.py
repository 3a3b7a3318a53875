"""`supernode up`'s start-up checks: taken ports and an unreachable Redis, named."""

from __future__ import annotations

import socket

import pytest

from services.launcher import free_port
from services.preflight import preflight, redis_problem
from supernode.config import load_config
from tests.cache.redis_server import REDIS_SERVER, SKIP_REASON, RedisServer


def test_a_taken_http_port_is_named() -> None:
    """A port another server listens on is reported with the flag and the OS's reason."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        problems = preflight(load_config(None, {"ports.http": port}), runs_ems=False)
    assert len(problems) == 1
    assert f"127.0.0.1:{port}" in problems[0] and "--port" in problems[0]
    assert "in use" in problems[0]


def test_free_ports_and_no_redis_pass() -> None:
    """Nothing to report when the ports are free and EMS keeps its pool in memory."""
    assert preflight(load_config(None, {"ports.http": free_port("127.0.0.1")}), True) == []


def test_an_unreachable_or_malformed_redis_url_is_named() -> None:
    """No server on the URL's port, or a URL that is not Redis's, gives a message naming it."""
    url = f"redis://127.0.0.1:{free_port('127.0.0.1')}/0"
    config = load_config(None, {"ports.http": free_port("127.0.0.1"), "cache.backend": "redis",
                                "cache.redis_url": url})
    (problem,) = preflight(config, runs_ems=True)
    assert url in problem and "--redis-url" in problem
    assert preflight(config, runs_ems=False) == []
    assert "not a Redis URL" in redis_problem("http://127.0.0.1:1/")


def test_a_live_redis_passes(tmp_path) -> None:
    """A Redis that answers PING is fine."""
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(free_port("127.0.0.1"), tmp_path)
    server.start()
    try:
        assert redis_problem(server.url) is None
    finally:
        server.stop()
