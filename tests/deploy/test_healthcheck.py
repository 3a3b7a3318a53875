"""services.healthcheck: the probe the compose healthchecks run, against real servers."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest

from services import healthcheck
from services.common.grpc_server import start_grpc_server


@pytest.fixture
def http_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_healthy_on_2xx_and_unhealthy_otherwise(http_server: str) -> None:
    """The HTTP probe exits 0 on a 2xx and 1 on any other status or when nothing answers."""
    assert healthcheck.main(["http", f"{http_server}/health"]) == 0
    assert healthcheck.main(["http", f"{http_server}/degraded"]) == 1
    assert healthcheck.main(["http", "http://127.0.0.1:9/health", "--timeout", "1"]) == 1


async def test_grpc_follows_the_health_service() -> None:
    """The gRPC probe exits 0 only while the health service reports SERVING; not serving, an unknown
    service or no server is 1."""
    server = await start_grpc_server([], "127.0.0.1", 0)
    address = f"127.0.0.1:{server.port}"
    try:
        assert await asyncio.to_thread(healthcheck.main, ["grpc", address]) == 0
        await server.set_serving(False)
        assert await asyncio.to_thread(healthcheck.main, ["grpc", address]) == 1
        assert await asyncio.to_thread(
            healthcheck.main, ["grpc", address, "--service", "no.such.Service"]) == 1
    finally:
        await server.stop(0)
    assert await asyncio.to_thread(healthcheck.main, ["grpc", address, "--timeout", "1"]) == 1
