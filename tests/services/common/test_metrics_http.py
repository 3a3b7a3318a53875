"""The workers' /metrics server: vLLM's colon names survive whatever format is asked for."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, Gauge

from services.common.metrics_http import serve_metrics

OPENMETRICS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                      "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def test_metrics_keep_colon_names_when_prometheus_asks_for_openmetrics() -> None:
    """Prometheus asks for OpenMetrics first; the answer is the text format with
    `vllm:num_requests_running` intact (prometheus-client's OpenMetrics writer would send
    `vllm_num_requests_running`)."""
    registry = CollectorRegistry()
    Gauge("vllm:num_requests_running", "Running.", ["engine"], registry=registry).labels("0").set(3)
    server, port = serve_metrics(registry, "127.0.0.1", 0)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5,
                             headers={"Accept": OPENMETRICS_ACCEPT})
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'vllm:num_requests_running{engine="0"} 3.0' in response.text
        assert httpx.get(f"http://127.0.0.1:{port}/nope", timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
