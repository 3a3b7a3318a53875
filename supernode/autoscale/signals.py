"""From the scheduler's /metrics text to what the HPA rule observes, pool by pool.

The scheduler exports each pool's load summed over its ready instances
(`supernode_pool_requests_waiting`, `supernode_pool_requests_running`,
`supernode_pool_kv_cache_usage_perc`, and `supernode_workers` for the ready count; see
services/scheduler/pool_metrics.py) and the TTFT histogram `vllm:time_to_first_token_seconds`
(model seconds). TTFT is the mean over the requests whose first token came since the previous
scrape: `delta _sum / delta _count`; unavailable on the first scrape, when no request got its
first token in between, or when the counters went backwards (a restarted scheduler).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from supernode.autoscale.hpa import Observation

POOLS = ("prefill", "decode")
_BY_POOL = {
    "supernode_pool_requests_waiting": "waiting",
    "supernode_pool_requests_running": "running",
    "supernode_pool_kv_cache_usage_perc": "kv",
    "supernode_workers": "ready",
}
_TTFT = "vllm:time_to_first_token_seconds"


@dataclass(frozen=True)
class Scrape:
    """The figures one /metrics text holds for the autoscaler."""

    by_pool: Mapping[str, Mapping[str, float]]
    """pool -> {"waiting", "running", "kv", "ready"} (absent when not exported)."""
    ttft_sum_s: float
    ttft_count: float


def parse(text: str) -> Scrape:
    """The pool series and the TTFT histogram's _sum and _count (summed over its labels)."""
    by_pool: dict[str, dict[str, float]] = {pool: {} for pool in POOLS}
    ttft_sum = ttft_count = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = _BY_POOL.get(sample.name)
            pool = sample.labels.get("pool")
            if key and pool in by_pool:
                by_pool[pool][key] = sample.value
            elif sample.name == f"{_TTFT}_sum":
                ttft_sum += sample.value
            elif sample.name == f"{_TTFT}_count":
                ttft_count += sample.value
    return Scrape(by_pool, ttft_sum, ttft_count)


class SchedulerSignals:
    """Successive scrapes -> an Observation per pool (keeps the last TTFT totals)."""

    def __init__(self) -> None:
        self._last_ttft: tuple[float, float] | None = None

    def observe(self, text: str, num_instances: Mapping[str, int]) -> dict[str, Observation]:
        """`num_instances`: the runtime's instance count per pool."""
        scrape = parse(text)
        ttft = self._ttft_mean(scrape)
        observations = {}
        for pool in POOLS:
            figures = scrape.by_pool[pool]
            ready = int(figures.get("ready", 0))
            values: dict[str, float | None] = {
                "waiting": figures.get("waiting"), "running": figures.get("running"),
                "kv": figures["kv"] * ready if "kv" in figures else None, "ttft": ttft}
            observations[pool] = Observation(num_instances.get(pool, 0), ready, values)
        return observations

    def _ttft_mean(self, scrape: Scrape) -> float | None:
        last, self._last_ttft = self._last_ttft, (scrape.ttft_sum_s, scrape.ttft_count)
        if last is None:
            return None
        num = scrape.ttft_count - last[1]
        if num <= 0:
            return None
        return (scrape.ttft_sum_s - last[0]) / num
