"""Request-rate sweeps: run one point per rate, in order, and find the highest rate that still
meets the SLO attainment target.

A rate meets the SLO when its attainment (good requests / all requests) is >= the target.
With `bisect_steps` > 0 the sweep then narrows the gap between the highest passing grid rate
and the next (failing) grid rate by bisection, one extra run per step; those points are kept
in the result like any other.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loadgen.metrics import BenchmarkMetrics
from loadgen.runner import RunOutcome


@dataclass(frozen=True)
class SweepPoint:
    """One rate's run, its metrics and its vLLM-schema result dictionary."""

    request_rate: float
    outcome: RunOutcome
    metrics: BenchmarkMetrics
    result: dict


RunPoint = Callable[[float], Awaitable[SweepPoint]]


def parse_request_rates(spec: str) -> tuple[float, ...]:
    """Rates from `--request-rate`: `inf`, `4`, a list `2,4,8`, a linear range
    `START:STOP:STEP` or a geometric range `START:STOP:xFACTOR` (STOP included when hit).
    Raises ValueError with the reason on a bad spec."""
    spec = spec.strip()
    if ":" in spec:
        return _parse_range(spec)
    rates = tuple(float(part) for part in spec.split(",") if part.strip())
    if not rates or any(not r > 0 for r in rates):
        raise ValueError(f"request rates must be > 0 (or inf), got {spec!r}")
    return rates


def _parse_range(spec: str) -> tuple[float, ...]:
    parts = spec.split(":")
    if len(parts) != 3:
        raise ValueError(f"a rate range is START:STOP:STEP or START:STOP:xFACTOR, got {spec!r}")
    start, stop = float(parts[0]), float(parts[1])
    geometric = parts[2].lower().startswith("x")
    step = float(parts[2][1:] if geometric else parts[2])
    if not (0 < start <= stop) or math.isinf(stop):
        raise ValueError(f"a rate range needs 0 < START <= STOP < inf, got {spec!r}")
    if (geometric and not step > 1) or (not geometric and not step > 0):
        raise ValueError(f"a rate range needs STEP > 0 or xFACTOR > 1, got {spec!r}")
    rates, rate, index = [], start, 0
    while rate <= stop * (1 + 1e-9):
        rates.append(round(rate, 9))
        index += 1
        rate = start * step**index if geometric else start + step * index
    return tuple(rates)


def meets_target(point: SweepPoint, target: float) -> bool:
    attainment = point.metrics.slo_attainment
    return attainment is not None and attainment >= target


def max_rate_meeting_slo(points: list[SweepPoint], target: float) -> float | None:
    """The highest request rate whose SLO attainment is >= `target`, or None if none does."""
    passing = [p.request_rate for p in points if meets_target(p, target)]
    return max(passing) if passing else None


async def run_sweep(
    rates: tuple[float, ...], run_point: RunPoint, target: float | None, bisect_steps: int = 0
) -> list[SweepPoint]:
    """Run every rate in order, then bisect toward the SLO edge when asked; points come back
    sorted by rate."""
    points = [await run_point(rate) for rate in rates]
    if target is not None:
        for _ in range(bisect_steps):
            bracket = _bracket(points, target)
            if bracket is None:
                break
            points.append(await run_point(round((bracket[0] + bracket[1]) / 2, 6)))
    return sorted(points, key=lambda p: p.request_rate)


def _bracket(points: list[SweepPoint], target: float) -> tuple[float, float] | None:
    """(highest passing rate, the next higher rate), both finite, or None."""
    best = max_rate_meeting_slo(points, target)
    higher = sorted(p.request_rate for p in points if best is not None and p.request_rate > best)
    if best is None or not higher or math.isinf(higher[0]) or math.isinf(best):
        return None
    return best, higher[0]


def sweep_summary(points: list[SweepPoint], slo_limits_ms: dict, target: float | None) -> dict:
    """The combined sweep result: the settings, the answer, and every point's result."""
    best = max_rate_meeting_slo(points, target) if target is not None else None
    return {
        "request_rates": [p.result["request_rate"] for p in points],
        "goodput_slos_ms": slo_limits_ms or None,
        "slo_attainment_target": target,
        "max_request_rate_meeting_slo": "inf" if best is not None and math.isinf(best) else best,
        "points": [p.result for p in points],
    }
