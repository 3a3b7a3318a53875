"""Reduces a run's results to vLLM's serving metrics, plus SLO attainment.

Definitions (all client-side, vLLM `bench serve`):
- TTFT: request sent -> first text chunk.
- TPOT: (latency - TTFT) / (output_tokens - 1), per request with >= 2 output tokens.
- ITL: every gap between consecutive text chunks, pooled over requests.
- E2EL: request sent -> last text chunk.
- request/output/total-token throughput: completed requests, output tokens, input+output
  tokens per second of run duration; failed requests count in none of them.
- request_goodput: completed requests meeting every SLO, per second (DistServe).
- slo_attainment: good requests / all requests (a failed request never meets an SLO).
- max_output_tokens_per_s / max_concurrent_requests: the fullest 1-second bucket of token
  arrivals, and the most requests active in any 1-second bucket.
Statistics of an empty set are 0.0, as in vLLM's output, and only for the JSON's sake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loadgen.accumulate import MS_PER_S, NAMES, RunAccumulator, meets_slo, weighted_percentile
from loadgen.config import ReportConfig, SloConfig
from loadgen.types import RequestResult

__all__ = ["MS_PER_S", "BenchmarkMetrics", "MetricStats", "compute_metrics", "meets_slo",
           "metrics_of_results"]


@dataclass(frozen=True)
class MetricStats:
    """One latency metric in milliseconds; `percentiles_ms` pairs (percentile, value)."""

    mean_ms: float
    median_ms: float
    std_ms: float
    percentiles_ms: tuple[tuple[float, float], ...]
    count: int


@dataclass(frozen=True)
class BenchmarkMetrics:
    """A run's summary; `stats` maps "ttft", "tpot", "itl", "e2el" to their statistics.

    `total_cached_tokens` / `prefix_cache_hit_rate`: prompt tokens the server served from its
    prefix cache, and their share of the prompt tokens of the requests that reported it (None
    when no request did). `request_rate_achieved`: requests sent per second between the first
    and the last send (the arrival rate the run really had; inf when all were sent at once)."""

    completed: int
    failed: int
    total_input_tokens: int
    total_output_tokens: int
    duration_s: float
    request_throughput: float
    request_goodput: float | None
    output_throughput: float
    total_token_throughput: float
    max_output_tokens_per_s: float
    max_concurrent_requests: int
    num_good: int | None
    slo_attainment: float | None
    stats: dict[str, MetricStats]
    total_cached_tokens: int = 0
    prefix_cache_hit_rate: float | None = None
    request_rate_achieved: float = 0.0


def compute_metrics(
    acc: RunAccumulator, duration_s: float, report: ReportConfig
) -> BenchmarkMetrics:
    """The summary of one run; `duration_s` must be > 0."""
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    slo_on = acc.slo.enabled
    num_good = acc.num_good if slo_on else None
    peak_tokens, peak_concurrency = acc.peaks()
    total_in, total_out = acc.total_input_tokens, acc.total_output_tokens
    return BenchmarkMetrics(
        completed=acc.num_completed,
        failed=acc.num_failed,
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        duration_s=duration_s,
        request_throughput=acc.num_completed / duration_s,
        request_goodput=None if num_good is None else num_good / duration_s,
        output_throughput=total_out / duration_s,
        total_token_throughput=(total_in + total_out) / duration_s,
        max_output_tokens_per_s=peak_tokens,
        max_concurrent_requests=peak_concurrency,
        num_good=num_good,
        slo_attainment=None if num_good is None or not acc.num_requests
        else num_good / acc.num_requests,
        stats={name: _stats(*acc.samples(name), report.percentiles) for name in NAMES},
        total_cached_tokens=acc.total_cached_tokens,
        prefix_cache_hit_rate=_hit_rate(acc),
        request_rate_achieved=_arrival_rate(acc),
    )


def metrics_of_results(results: list[RequestResult] | tuple[RequestResult, ...],
                       duration_s: float, report: ReportConfig, slo: SloConfig
                       ) -> BenchmarkMetrics:
    """`compute_metrics` over results already collected."""
    acc = RunAccumulator(slo)
    for result in results:
        acc.add(result)
    return compute_metrics(acc, duration_s, report)


def _hit_rate(acc: RunAccumulator) -> float | None:
    if not acc.num_cache_reported or not acc.total_input_tokens:
        return None
    return acc.total_cached_tokens / acc.total_input_tokens


def _arrival_rate(acc: RunAccumulator) -> float:
    span = acc.last_sent_s - acc.first_sent_s
    if acc.num_requests < 2:
        return 0.0
    return (acc.num_requests - 1) / span if span > 0 else math.inf


def _stats(values_s: np.ndarray, weights: np.ndarray | None,
           percentiles: tuple[float, ...]) -> MetricStats:
    if not len(values_s):
        return MetricStats(0.0, 0.0, 0.0, tuple((p, 0.0) for p in percentiles), 0)
    ms = values_s * MS_PER_S
    if weights is None:
        mean, std, count = float(ms.mean()), float(ms.std()), len(ms)
    else:
        mean = float(np.average(ms, weights=weights))
        std = float(np.sqrt(np.average((ms - mean) ** 2, weights=weights)))
        count = int(weights.sum())
    return MetricStats(
        mean_ms=mean,
        median_ms=weighted_percentile(ms, weights, 50.0),
        std_ms=std,
        percentiles_ms=tuple((p, weighted_percentile(ms, weights, p)) for p in percentiles),
        count=count,
    )
