"""Per-pool load on the scheduler's /metrics, from what the workers report on their heartbeats.

The workers export vLLM's per-instance gauges on their own /metrics ports, which are reachable
only where the workers run (a private container network, a pod). An autoscaler that sees only
the scheduler (`supernode autoscale`, or an HPA on an Object metric) reads the same figures
here, summed over each pool's ready instances (draining and loading ones are not counted, as
they take no new requests), as of their last heartbeat (at most `heartbeat_interval_s` old):

| series | per pool |
|---|---|
| `supernode_pool_requests_waiting{pool}` | sum of `vllm:num_requests_waiting` |
| `supernode_pool_requests_running{pool}` | sum of `vllm:num_requests_running` |
| `supernode_pool_kv_cache_usage_perc{pool}` | mean of `vllm:kv_cache_usage_perc` (decode) |

`supernode_workers{pool}` counts the same ready instances.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from supernode.engine.registry import WorkerKind, WorkerRegistry

POOLS = (WorkerKind.PREFILL, WorkerKind.DECODE)


class PoolLoadCollector(Collector):
    """Reads the registry at every scrape; register it on the scheduler's CollectorRegistry."""

    def __init__(self, registry: WorkerRegistry) -> None:
        self.registry = registry

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        waiting, running, kv = self._families()
        for kind in POOLS:
            live = self.registry.live(kind)
            waiting.add_metric([kind.value], sum(w.load.num_waiting for w in live))
            running.add_metric([kind.value], sum(w.load.num_running for w in live))
            if kind is WorkerKind.DECODE:
                usage = [w.load.kv_used_tokens / w.kv_capacity_tokens for w in live
                         if w.kv_capacity_tokens]
                kv.add_metric([kind.value], sum(usage) / len(usage) if usage else 0.0)
        yield from (waiting, running, kv)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("supernode_pool_requests_waiting",
                              "Requests waiting on the pool's ready instances (sum of their "
                              "vllm:num_requests_waiting, as of their last heartbeat).",
                              labels=["pool"]),
            GaugeMetricFamily("supernode_pool_requests_running",
                              "Requests running on the pool's ready instances (sum of their "
                              "vllm:num_requests_running, as of their last heartbeat).",
                              labels=["pool"]),
            GaugeMetricFamily("supernode_pool_kv_cache_usage_perc",
                              "Mean KV-cache usage of the pool's ready instances (their "
                              "vllm:kv_cache_usage_perc; 1 = 100%).", labels=["pool"]))
