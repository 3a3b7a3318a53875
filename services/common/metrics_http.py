"""Serving a prometheus-client registry over HTTP from a gRPC worker process."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> tuple[WSGIServer, int]:
    """Start /metrics on a background thread; returns the server and its bound port."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, server.server_port
