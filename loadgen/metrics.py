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

from dataclasses import dataclass

import numpy as np

from loadgen.config import ReportConfig, SloConfig
from loadgen.types import RequestResult

MS_PER_S = 1000.0


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
    """A run's summary; `stats` maps "ttft", "tpot", "itl", "e2el" to their statistics."""

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


def latency_samples_s(
    results: tuple[RequestResult, ...] | list[RequestResult],
) -> dict[str, list[float]]:
    """Per-metric samples in seconds over successful requests (ITL pooled over all gaps)."""
    ok = [r for r in results if r.success]
    return {
        "ttft": [r.ttft_s for r in ok],
        "tpot": [r.tpot_s for r in ok if r.tpot_s is not None],
        "itl": [gap for r in ok for gap in r.itls_s],
        "e2el": [r.latency_s for r in ok],
    }


def meets_slo(result: RequestResult, slo: SloConfig) -> bool:
    """True when `result` completed and every limit in `slo` holds (value <= limit)."""
    if not result.success:
        return False
    values_s = {"ttft": result.ttft_s, "tpot": result.tpot_s or 0.0, "e2el": result.latency_s}
    return all(values_s[name] * MS_PER_S <= limit for name, limit in slo.limits_ms.items())


def compute_metrics(
    results: tuple[RequestResult, ...] | list[RequestResult],
    duration_s: float,
    report: ReportConfig,
    slo: SloConfig,
) -> BenchmarkMetrics:
    """The summary of one run; `duration_s` must be > 0."""
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    ok = [r for r in results if r.success]
    total_in = sum(r.prompt_len for r in ok)
    total_out = sum(r.output_tokens for r in ok)
    num_good = sum(meets_slo(r, slo) for r in results) if slo.enabled else None
    peak_tokens, peak_concurrency = _peaks(ok)
    samples = latency_samples_s(results)
    return BenchmarkMetrics(
        completed=len(ok),
        failed=len(results) - len(ok),
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        duration_s=duration_s,
        request_throughput=len(ok) / duration_s,
        request_goodput=None if num_good is None else num_good / duration_s,
        output_throughput=total_out / duration_s,
        total_token_throughput=(total_in + total_out) / duration_s,
        max_output_tokens_per_s=peak_tokens,
        max_concurrent_requests=peak_concurrency,
        num_good=num_good,
        slo_attainment=None if num_good is None or not results else num_good / len(results),
        stats={name: _stats(samples[name], report.percentiles) for name in samples},
    )


def _stats(values_s: list[float], percentiles: tuple[float, ...]) -> MetricStats:
    if not values_s:
        return MetricStats(0.0, 0.0, 0.0, tuple((p, 0.0) for p in percentiles), 0)
    ms = np.asarray(values_s) * MS_PER_S
    return MetricStats(
        mean_ms=float(ms.mean()),
        median_ms=float(np.median(ms)),
        std_ms=float(ms.std()),
        percentiles_ms=tuple((p, float(np.percentile(ms, p))) for p in percentiles),
        count=len(ms),
    )


def _peaks(ok: list[RequestResult]) -> tuple[float, int]:
    """Fullest 1-s bucket of output tokens and of active requests (vLLM's method; a chunk that
    carries several tokens, as with MTP, counts the request's mean tokens per chunk)."""
    if not ok:
        return 0.0, 0
    t0 = min(r.started_at_s for r in ok)
    num_buckets = int(np.ceil(max(r.started_at_s + r.latency_s for r in ok) - t0)) + 1
    tokens = np.zeros(num_buckets)
    active = np.zeros(num_buckets)
    for r in ok:
        first = r.started_at_s + r.ttft_s - t0
        times = first + np.concatenate(([0.0], np.cumsum(r.itls_s)))
        per_chunk = max(1, r.output_tokens) / len(times)
        np.add.at(tokens, np.clip(times.astype(int), 0, num_buckets - 1), per_chunk)
        start_bucket = int(r.started_at_s - t0)
        end_bucket = int(r.started_at_s + r.latency_s - t0)
        active[start_bucket : end_bucket + 1] += 1
    return float(tokens.max()), int(active.max())
