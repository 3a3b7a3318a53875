"""Serving a prometheus-client registry over HTTP: /metrics in the classic text format.

The format is fixed at text 0.0.4 rather than negotiated: prometheus-client's OpenMetrics
writer (0.2x) rewrites the colon of `vllm:*` sample names to `_` when Prometheus asks for
OpenMetrics (its default), and vLLM's names, colon included, are what dashboards and
autoscalers select on.
"""

from __future__ import annotations

import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's samples in the text format, metric names exactly as registered."""
    return generate_latest(registry)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> tuple[WSGIServer, int]:
    """Start /metrics on a background thread; returns the server and its bound port."""

    def app(environ: dict, start_response):
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics\n"]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE)])
        return [exposition(registry)]

    server = make_server(host, port, app, _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server, server.server_port
