"""The scheduler's per-pool load series: sums over ready instances, from their heartbeats."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from services.scheduler.pool_metrics import PoolLoadCollector
from supernode.engine.registry import (
    WorkerInfo,
    WorkerKind,
    WorkerLoad,
    WorkerRegistry,
    WorkerState,
)


def test_pool_series_sum_the_ready_instances_loads() -> None:
    """Waiting and running are summed, KV usage averaged, over ready workers only: a loading
    or a draining worker takes no new requests and is left out."""
    r = WorkerRegistry(lease_s=3.0)
    for worker_id, kind, state in [("d0", WorkerKind.DECODE, WorkerState.READY),
                                   ("d1", WorkerKind.DECODE, WorkerState.READY),
                                   ("d2", WorkerKind.DECODE, WorkerState.LOADING),
                                   ("d3", WorkerKind.DECODE, WorkerState.READY),
                                   ("p0", WorkerKind.PREFILL, WorkerState.READY)]:
        r.register(WorkerInfo(worker_id, kind, f"{worker_id}:1", kv_capacity_tokens=1000,
                              state=state), 0.0)
    r.heartbeat("d0", WorkerLoad(num_running=4, num_waiting=3, kv_used_tokens=200), 0.1)
    r.heartbeat("d1", WorkerLoad(num_running=2, num_waiting=5, kv_used_tokens=600), 0.1)
    r.heartbeat("d2", WorkerLoad(num_waiting=100, kv_used_tokens=1000), 0.1)
    r.heartbeat("d3", WorkerLoad(num_waiting=50, kv_used_tokens=1000), 0.1)
    r.heartbeat("p0", WorkerLoad(num_running=1, num_waiting=7), 0.1)
    r.drain("d3")
    prometheus = CollectorRegistry()
    prometheus.register(PoolLoadCollector(r))

    def value(name: str, pool: str) -> float | None:
        return prometheus.get_sample_value(name, {"pool": pool})

    assert value("supernode_pool_requests_waiting", "decode") == 8
    assert value("supernode_pool_requests_running", "decode") == 6
    assert value("supernode_pool_kv_cache_usage_perc", "decode") == 0.4
    assert value("supernode_pool_requests_waiting", "prefill") == 7
    assert value("supernode_pool_kv_cache_usage_perc", "prefill") is None


def test_an_empty_pool_reads_zero() -> None:
    prometheus = CollectorRegistry()
    prometheus.register(PoolLoadCollector(WorkerRegistry(lease_s=3.0)))
    assert prometheus.get_sample_value("supernode_pool_requests_waiting", {"pool": "decode"}) == 0
    assert prometheus.get_sample_value("supernode_pool_kv_cache_usage_perc",
                                       {"pool": "decode"}) == 0.0


def test_docs_metrics_lists_every_pool_series() -> None:
    """docs/metrics.md has a row for each series the collector exports."""
    doc = (Path(__file__).resolve().parents[3] / "docs" / "metrics.md").read_text()
    names = [m.name for m in PoolLoadCollector(WorkerRegistry(lease_s=3.0)).describe()]
    assert names and all(f"`{name}`" in doc for name in names), names
