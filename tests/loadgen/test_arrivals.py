"""Arrival processes: mean rate and dispersion of gaps, seeding, and schedules honoured."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadgen.arrivals import arrival_offsets_s, schedule_offsets_s
from loadgen.types import SampleRequest
from tests.loadgen.helpers import make_sample, retry_under_contention, run

NUM_GAPS = 40_000


@pytest.mark.parametrize("burstiness", [1.0, 0.25, 4.0])
def test_gamma_gaps_have_the_requested_mean_rate_and_dispersion(burstiness):
    """Gaps are gamma with mean 1/rate and squared coefficient of variation 1/burstiness
    (1 = Poisson): both within a few percent over 40k seeded gaps."""
    rate = 8.0
    gaps = np.diff(arrival_offsets_s(NUM_GAPS, rate, burstiness, seed=7), prepend=0.0)
    assert 1 / gaps.mean() == pytest.approx(rate, rel=0.02)
    cv2 = gaps.var() / gaps.mean() ** 2
    assert cv2 == pytest.approx(1 / burstiness, rel=0.06)


def test_poisson_counts_per_window_have_variance_equal_to_mean():
    """For a Poisson process (burstiness 1) the number of arrivals per 1-s window has
    index of dispersion ~1; a bursty gamma process (0.25) is over-dispersed."""

    def dispersion(burstiness: float) -> float:
        offsets = arrival_offsets_s(NUM_GAPS, 10.0, burstiness, seed=3)
        counts = np.bincount(offsets.astype(int))[:-1]
        return counts.var() / counts.mean()

    assert dispersion(1.0) == pytest.approx(1.0, abs=0.1)
    assert dispersion(0.25) > 2.5


def test_arrivals_are_seeded():
    """The same seed gives the same schedule, a different seed a different one."""
    a, b, c = (arrival_offsets_s(100, 5.0, 1.0, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_infinite_rate_and_infinite_burstiness():
    """Rate inf sends all at 0; burstiness inf spaces requests evenly at 1/rate."""
    assert not arrival_offsets_s(5, math.inf, 1.0, 0).any()
    assert np.allclose(np.diff(arrival_offsets_s(5, 4.0, math.inf, 0)), 0.25)


def test_trace_offsets_take_precedence_and_scale():
    """When every sample has a trace offset, those offsets (divided by time_scale) are used."""
    samples = [SampleRequest((1000,), 1, 1, t) for t in (0.0, 0.5, 2.0)]
    assert np.allclose(schedule_offsets_s(samples, 1.0, 1.0, 0, time_scale=2.0), [0, 0.25, 1.0])


async def test_requests_are_released_on_schedule(scripted_base_url):
    """The runner sends each request at its scheduled offset (within 5 ms; up to three
    attempts, since a neighbour's CPU burst can only delay a release)."""

    async def attempt() -> None:
        outcome = await run(
            scripted_base_url,
            [make_sample(output_len=2)] * 8,
            {"itl_ms": 1},
            request_rate=40.0,
            burstiness=1.0,
            seed=5,
        )
        expected = arrival_offsets_s(8, 40.0, 1.0, seed=5)
        started = np.array([r.started_at_s for r in outcome.results])
        assert np.all(np.abs(started - expected) < 0.005), started - expected

    await retry_under_contention(attempt)
