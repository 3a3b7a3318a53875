"""A server that errors or drops connections is reported (failed count, error text kept),
and the run carries on."""

from __future__ import annotations

from loadgen.config import EndpointConfig, LoadConfig, ReportConfig, SloConfig
from loadgen.metrics import metrics_of_results
from loadgen.runner import run_benchmark
from tests.loadgen.helpers import make_sample, run

HTTP_500, DROP, ERROR_EVENT, TRUNCATE = 1, 2, 3, 4


async def test_failures_are_counted_and_their_errors_kept(scripted_base_url):
    """HTTP 500, a dropped connection, an error event and a stream cut before finish_reason
    each give one failed result with its error text; the healthy requests still complete and
    only they enter the metrics."""
    faults = (HTTP_500, DROP, ERROR_EVENT, TRUNCATE)
    samples = [make_sample(output_len=5, first_id=f) for f in faults] + [
        make_sample(output_len=5)
    ] * 3
    outcome = await run(scripted_base_url, samples, {"itl_ms": 2})
    errors = [r.error for r in outcome.results]
    assert "HTTP 500" in errors[0] and "scripted failure" in errors[0]
    assert "ClientPayloadError" in errors[1], errors[1]
    assert "stream error" in errors[2] and "scripted stream error" in errors[2]
    assert "finish_reason" in errors[3]
    assert [r.success for r in outcome.results] == [False] * 4 + [True] * 3
    metrics = metrics_of_results(
        outcome.results, outcome.duration_s, ReportConfig(), SloConfig({"ttft": 1e6})
    )
    assert metrics.completed == 3 and metrics.failed == 4
    assert metrics.total_output_tokens == 15
    assert metrics.slo_attainment == 3 / 7


async def test_unreachable_server_fails_every_request_without_raising():
    """Connection refused is a failed result per request with the transport's message."""
    endpoint = EndpointConfig(base_url="http://127.0.0.1:9", model="m", request_timeout_s=5)
    outcome = await run_benchmark([make_sample()] * 3, endpoint, LoadConfig())
    assert [r.success for r in outcome.results] == [False] * 3
    assert all("Connect" in r.error for r in outcome.results)


async def test_request_timeout_is_a_failure(scripted_base_url):
    """A request running past request_timeout_s fails with a timeout error."""
    endpoint = EndpointConfig(
        base_url=scripted_base_url,
        model="m",
        request_timeout_s=0.2,
        extra_body={"script": {"ttft_ms": 1000}},
    )
    outcome = await run_benchmark([make_sample(output_len=2)], endpoint, LoadConfig())
    assert not outcome.results[0].success and "timeout" in outcome.results[0].error
