"""Streaming reduction of a run's results: what every report needs, in memory that grows with
the number of requests (a few numbers each) but never with their tokens.

`add(result)` takes one request as the client saw it (the live runner passes every
`RequestResult`). A producer that knows the inter-token gaps in aggregate (the offline
simulator: every running request of a decode step sees the same gap) adds them weighted with
`add_itls`, and the output tokens per instant with `add_output_tokens`, and passes results
without per-token data (`itls_s` empty, `count_chunks=False`).

Statistics are exact: TTFT, TPOT and E2EL keep one value per request; ITLs keep (value,
weight) pairs whose weighted percentiles equal numpy's linear-interpolation percentiles of
the expanded multiset. Peaks use vLLM's 1-second buckets.
"""

from __future__ import annotations

from array import array
from collections import Counter

import numpy as np

from loadgen.config import SloConfig
from loadgen.types import RequestResult

MS_PER_S = 1000.0
NAMES = ("ttft", "tpot", "itl", "e2el")


class _Buckets:
    """Growable per-second buckets from the run's first instant."""

    def __init__(self) -> None:
        self.values = np.zeros(64)

    def add(self, index: int, amount: float) -> None:
        if index >= len(self.values):
            grown = np.zeros(max(2 * len(self.values), index + 1))
            grown[:len(self.values)] = self.values
            self.values = grown
        self.values[max(0, index)] += amount


class RunAccumulator:
    """Everything `compute_metrics` and the reports need from one run."""

    def __init__(self, slo: SloConfig) -> None:
        self.slo = slo
        self.num_requests = 0
        self.num_completed = 0
        self.total_input_tokens = 0
        self.total_output_tokens = 0
        self.total_cached_tokens = 0
        self.num_cache_reported = 0
        self.num_good = 0
        self.errors: Counter[str] = Counter()
        self.first_sent_s = float("inf")
        self.last_sent_s = float("-inf")
        self._values = {name: array("d") for name in NAMES}
        self._itl_weights = array("d")
        self._tokens = _Buckets()
        self._active = _Buckets()  # +1 at a request's first bucket, -1 after its last

    # ---- input
    def add(self, result: RequestResult, count_chunks: bool = True) -> None:
        """One request's outcome. `count_chunks` False: its ITLs and token times come through
        `add_itls` / `add_output_tokens` instead."""
        self.num_requests += 1
        self.first_sent_s = min(self.first_sent_s, result.started_at_s)
        self.last_sent_s = max(self.last_sent_s, result.started_at_s)
        if not result.success:
            self.errors[result.error] += 1
            return
        self.num_completed += 1
        self.total_input_tokens += result.prompt_len
        self.total_output_tokens += result.output_tokens
        if result.cached_tokens is not None:
            self.total_cached_tokens += result.cached_tokens
            self.num_cache_reported += 1
        self.num_good += self.slo.enabled and meets_slo(result, self.slo)
        self._values["ttft"].append(result.ttft_s)
        if result.tpot_s is not None:
            self._values["tpot"].append(result.tpot_s)
        self._values["e2el"].append(result.latency_s)
        start = int(result.started_at_s)
        self._active.add(start, 1)
        self._active.add(int(result.started_at_s + result.latency_s) + 1, -1)
        if count_chunks:
            self._add_chunks(result)

    def add_itls(self, value_s: float, weight: float) -> None:
        """`weight` inter-token gaps of `value_s` seconds each."""
        if weight > 0:
            self._values["itl"].append(value_s)
            self._itl_weights.append(weight)

    def add_output_tokens(self, at_s: float, num_tokens: float) -> None:
        """`num_tokens` output tokens reached clients at run time `at_s`."""
        self._tokens.add(int(at_s), num_tokens)

    # ---- output
    @property
    def num_failed(self) -> int:
        return self.num_requests - self.num_completed

    def samples(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(values in seconds, weights or None when every weight is 1) of one metric."""
        values = np.frombuffer(self._values[name], dtype=np.float64)
        if name == "itl":
            weights = np.frombuffer(self._itl_weights, dtype=np.float64)
            return values, None if np.all(weights == 1) else weights
        return values, None

    def peaks(self) -> tuple[float, int]:
        """Fullest 1-s bucket of output tokens, and the most requests active in any bucket."""
        active = np.cumsum(self._active.values)
        return float(self._tokens.values.max()), int(active.max()) if self.num_completed else 0

    def _add_chunks(self, result: RequestResult) -> None:
        for gap in result.itls_s:
            self._values["itl"].append(gap)
            self._itl_weights.append(1.0)
        times = result.started_at_s + result.ttft_s + np.concatenate(
            ([0.0], np.cumsum(result.itls_s)))
        per_chunk = max(1, result.output_tokens) / len(times)
        for t in times:
            self._tokens.add(int(t), per_chunk)


def meets_slo(result: RequestResult, slo: SloConfig) -> bool:
    """True when `result` completed and every limit in `slo` holds (value <= limit)."""
    if not result.success:
        return False
    values_s = {"ttft": result.ttft_s, "tpot": result.tpot_s or 0.0, "e2el": result.latency_s}
    return all(values_s[name] * MS_PER_S <= limit for name, limit in slo.limits_ms.items())


def weighted_percentile(values: np.ndarray, weights: np.ndarray | None, p: float) -> float:
    """numpy's linear-interpolation percentile of `values` with each repeated `weights` times
    (weights are integral counts)."""
    if weights is None:
        return float(np.percentile(values, p))
    order = np.argsort(values, kind="stable")
    sorted_values, cum = values[order], np.cumsum(weights[order])
    h = (cum[-1] - 1) * p / 100.0
    lower = int(np.floor(h))

    def at(k: int) -> float:  # the k-th element (0-based) of the expanded sorted multiset
        return float(sorted_values[min(len(cum) - 1, int(np.searchsorted(cum, k + 1)))])

    low = at(lower)
    return low + (h - lower) * (at(lower + 1) - low) if h > lower else low
