"""Goodput counts exactly the requests that meet every SLO."""

from __future__ import annotations

import pytest

from loadgen.config import ReportConfig, SloConfig
from loadgen.metrics import meets_slo, metrics_of_results
from tests.loadgen.helpers import make_result, make_sample, retry_under_contention, run


def test_goodput_counts_requests_meeting_every_slo_exactly():
    """A completed request is good when TTFT, TPOT and E2EL are each <= their limit (equal
    counts); failed requests are never good but count in the attainment denominator."""
    results = [
        make_result(ttft_ms=100, tpot_ms=10),  # good (TTFT exactly at the limit)
        make_result(ttft_ms=50, tpot_ms=20),  # good (TPOT exactly at the limit)
        make_result(ttft_ms=101, tpot_ms=5),  # TTFT too slow
        make_result(ttft_ms=10, tpot_ms=21),  # TPOT too slow
        make_result(ttft_ms=10, tpot_ms=5, output_tokens=1),  # one token: TPOT counts as 0
        make_result(ttft_ms=0, tpot_ms=0, success=False),
    ]
    slo = SloConfig({"ttft": 100.0, "tpot": 20.0})
    assert [meets_slo(r, slo) for r in results] == [True, True, False, False, True, False]
    metrics = metrics_of_results(results, 2.0, ReportConfig(), slo)
    assert metrics.num_good == 3
    assert metrics.request_goodput == pytest.approx(1.5)
    assert metrics.slo_attainment == pytest.approx(3 / 6)
    assert metrics.completed == 5 and metrics.failed == 1


def test_e2el_slo_uses_end_to_end_latency():
    """The e2el limit is compared with TTFT + the decode time of the request."""
    slo = SloConfig({"e2el": 200.0})
    assert meets_slo(make_result(ttft_ms=100, tpot_ms=10, output_tokens=11), slo)  # 200 ms
    assert not meets_slo(make_result(ttft_ms=100, tpot_ms=10, output_tokens=12), slo)  # 210 ms


def test_without_slos_goodput_is_not_reported():
    """No --goodput: request_goodput and attainment are None, not 0."""
    metrics = metrics_of_results([make_result(10, 10)], 1.0, ReportConfig(), SloConfig())
    assert metrics.request_goodput is None and metrics.slo_attainment is None


async def test_goodput_against_a_server_with_per_request_ttft(scripted_base_url):
    """The server makes TTFT = 2 ms per prompt token; with a 100 ms TTFT SLO exactly the
    prompts of 10, 20 and 30 tokens (20-60 ms) are good and those of 70-90 (140-180 ms) not."""

    async def attempt() -> None:
        samples = [make_sample(prompt_len=n, output_len=3) for n in (10, 70, 20, 80, 30, 90)]
        outcome = await run(
            scripted_base_url,
            samples,
            {"ttft_ms_per_prompt_token": 2, "itl_ms": 2},
            request_rate=20.0,
            burstiness=float("inf"),
        )
        slo = SloConfig({"ttft": 100.0})
        good = [meets_slo(r, slo) for r in outcome.results]
        assert good == [True, False, True, False, True, False]
        metrics = metrics_of_results(outcome.results, outcome.duration_s, ReportConfig(), slo)
        assert metrics.num_good == 3
        assert metrics.request_goodput == pytest.approx(3 / outcome.duration_s)

    await retry_under_contention(attempt)
