"""When each request is released, relative to the start of a run.

Inter-arrival gaps are gamma-distributed with shape k = burstiness and mean 1 / rate, so the
process has the requested mean rate and a squared coefficient of variation of the gaps of
1 / k: k = 1 is a Poisson process, k < 1 is burstier, k = inf sends evenly spaced requests.
Rate inf sends everything at offset 0. The first request goes out after one gap, as in vLLM.
"""

from __future__ import annotations

import math

import numpy as np

from loadgen.types import SampleRequest


def arrival_offsets_s(
    num_requests: int, request_rate: float, burstiness: float, seed: int
) -> np.ndarray:
    """Cumulative send offsets in seconds, non-decreasing, one per request."""
    if num_requests < 0:
        raise ValueError(f"num_requests must be >= 0, got {num_requests}")
    if not request_rate > 0 or not burstiness > 0:
        raise ValueError(f"rate and burstiness must be > 0, got {request_rate}, {burstiness}")
    if math.isinf(request_rate):
        return np.zeros(num_requests)
    if math.isinf(burstiness):
        gaps = np.full(num_requests, 1.0 / request_rate)
    else:
        rng = np.random.default_rng(seed)
        gaps = rng.gamma(
            shape=burstiness, scale=1.0 / (request_rate * burstiness), size=num_requests
        )
    return np.cumsum(gaps)


def schedule_offsets_s(
    samples: list[SampleRequest],
    request_rate: float,
    burstiness: float,
    seed: int,
    time_scale: float = 1.0,
) -> np.ndarray:
    """Send offsets for `samples`: their own trace offsets (divided by `time_scale`) when every
    sample has one, else a gamma process at `request_rate`."""
    if samples and all(s.arrival_offset_s is not None for s in samples):
        return np.array([s.arrival_offset_s for s in samples], dtype=float) / time_scale
    return arrival_offsets_s(len(samples), request_rate, burstiness, seed)
