"""Sweeps: rate specs, and finding the highest rate that meets the SLO attainment target."""

from __future__ import annotations

import math

import pytest

from loadgen.accumulate import RunAccumulator
from loadgen.config import LoadConfig, ReportConfig, SloConfig
from loadgen.metrics import metrics_of_results
from loadgen.runner import RunOutcome
from loadgen.sweep import SweepPoint, max_rate_meeting_slo, parse_request_rates, run_sweep
from tests.loadgen.helpers import make_result


def test_rate_specs():
    """A single rate, inf, a list, a linear and a geometric range (STOP included)."""
    assert parse_request_rates("4") == (4.0,)
    assert parse_request_rates("inf") == (math.inf,)
    assert parse_request_rates("2,4,8,inf") == (2.0, 4.0, 8.0, math.inf)
    assert parse_request_rates("1:3:0.5") == (1.0, 1.5, 2.0, 2.5, 3.0)
    assert parse_request_rates("1:16:x2") == (1.0, 2.0, 4.0, 8.0, 16.0)
    for bad in ("0", "-1", "1:2", "3:1:1", "1:4:x1", "a,b", ""):
        with pytest.raises(ValueError):
            parse_request_rates(bad)


def _fake_point(rate: float, capacity: float) -> SweepPoint:
    """A point whose requests all meet the SLO below `capacity` req/s and half do above."""
    results = (
        [make_result(10, 10)] * 10
        if rate <= capacity
        else [make_result(10, 10)] * 5 + [make_result(500, 10)] * 5
    )
    metrics = metrics_of_results(results, 1.0, ReportConfig(), SloConfig({"ttft": 100}))
    return SweepPoint(
        rate,
        RunOutcome(RunAccumulator(SloConfig()), 1.0, LoadConfig(request_rate=rate),
                   tuple(results)),
        metrics,
        {"request_rate": rate},
    )


async def test_sweep_finds_highest_passing_rate_and_bisects():
    """The answer is the highest rate with attainment >= target; each bisection step runs
    the midpoint between it and the next (failing) rate."""
    ran: list[float] = []

    async def run_point(rate: float) -> SweepPoint:
        ran.append(rate)
        return _fake_point(rate, capacity=11.0)

    points = await run_sweep((2.0, 4.0, 8.0, 16.0), run_point, target=0.9, bisect_steps=2)
    assert ran == [2.0, 4.0, 8.0, 16.0, 12.0, 10.0]
    assert max_rate_meeting_slo(points, 0.9) == 10.0
    assert [p.request_rate for p in points] == sorted(ran)


async def test_sweep_without_any_passing_rate():
    """When no rate meets the target the answer is None and no bisection runs."""

    async def run_point(rate: float) -> SweepPoint:
        return _fake_point(rate, capacity=0.5)

    points = await run_sweep((1.0, 2.0), run_point, target=0.9, bisect_steps=3)
    assert len(points) == 2 and max_rate_meeting_slo(points, 0.9) is None
