"""The emulated-hardware series (`supernode_*`) a prefill or decode instance exports beside
vLLM's: what the hardware model says about each step, the instance's HBM budget, its link
planes and its KV-cache configuration. Seconds are model seconds; bytes are true (modelled)
sizes, per die where the name says so.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from services.common.vllm_metrics import LABELS, STEP_BUCKETS
from supernode.perf import Deployment, Timing, memory_budget
from supernode.perf.experts import expert_load

#: Breakdown parts that are all-to-all traffic on the scale-up (UB) plane.
UB_PARTS = ("dispatch", "combine")

Role = Literal["prefill", "decode"]


def moe_tokens_per_die(d: Deployment, role: Role, timing: Timing) -> float:
    """Tokens one die routes per MoE layer, sized as the hardware model sizes them: prefill
    spreads the computed tokens over every die; decode pads each DP group to the busiest one
    (as `supernode.perf.decode` does) and splits it over ``tp``."""
    if role == "prefill":
        return timing.num_tokens / d.num_dies
    requests = math.ceil(timing.num_tokens / d.tokens_per_step / d.dp)
    return requests * d.tokens_per_step / d.tp


def precreate(metrics: object, labels: dict[str, str]) -> None:
    """Create every series of `metrics` whose label names are exactly `labels`' at zero, so
    `rate()` panels have data before the first event (vLLM and Prometheus practice)."""
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase) and value._labelnames == tuple(labels):
            value.labels(**labels)


class HardwareSeries:
    """Series shared by prefill and decode instances, on the worker's registry."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self.labels = labels
        self._children: dict[tuple[object, ...], Any] = {}
        r = registry
        self.step_seconds = Histogram("supernode_step_seconds",
                                      "Modelled time of one batch (prefill) or step (decode).",
                                      LABELS, buckets=STEP_BUCKETS, registry=r)
        self.step_part_seconds = Counter("supernode_step_part_seconds",
                                         "Modelled step time by part (sum over steps; parts of "
                                         "overlapped microbatch streams run concurrently).",
                                         (*LABELS, "part"), registry=r)
        self.busy_seconds = Counter("supernode_busy_seconds",
                                    "Model seconds the instance spent computing.", LABELS,
                                    registry=r)
        self.compute_util = Gauge("supernode_compute_utilization",
                                  "Modelled compute utilisation of the last step (0-1).", LABELS,
                                  registry=r)
        self.hbm_util = Gauge("supernode_hbm_bandwidth_utilization",
                              "Modelled HBM bandwidth utilisation of the last step (0-1).",
                              LABELS, registry=r)
        self.expert_imbalance = Gauge("supernode_expert_imbalance",
                                      "Busiest / mean routed expert-rank load of the last step "
                                      "(1 = perfectly balanced; absent for dense models).",
                                      LABELS, registry=r)
        self.link_bytes = Counter("supernode_link_bytes", "Modelled bytes moved per link plane.",
                                  (*LABELS, "plane", "direction"), registry=r)
        self.link_busy_seconds = Counter("supernode_link_busy_seconds",
                                         "Modelled seconds spent moving bytes per link plane.",
                                         (*LABELS, "plane"), registry=r)
        self.hbm_used_bytes = Gauge("supernode_hbm_used_bytes",
                                    "Modelled HBM of the fullest die by use: weights, ep_buffers "
                                    "(dispatch/combine), kv (the pre-allocated KV pool), reserve.",
                                    (*LABELS, "kind"), registry=r)
        self.hbm_capacity_bytes = Gauge("supernode_hbm_capacity_bytes",
                                        "HBM of one die.", LABELS, registry=r)
        self.speedup = Gauge("supernode_speedup",
                             "Model seconds per wall second (divide rate() of model seconds by "
                             "it to get a busy fraction).", LABELS, registry=r)
        self.cache_config = Gauge("vllm:cache_config_info", "KV-cache configuration (always 1).",
                                  (*LABELS, "block_size", "num_gpu_blocks",
                                   "enable_prefix_caching", "cache_dtype",
                                   "gpu_memory_utilization"), registry=r)
        self._deployment: Deployment | None = None
        self._role: Role = "decode"

    def on_start(self, deployment: Deployment, role: Role, speedup: float, block_size: int,
                 num_kv_tokens: int, prefix_caching: bool) -> None:
        """Publish what is fixed for the life of the instance."""
        self._deployment, self._role = deployment, role
        labels = self.labels
        if not deployment.model.is_moe:  # no experts, no imbalance: leave the series absent
            self.expert_imbalance.remove(*labels.values())
        self.speedup.labels(**labels).set(speedup)
        budget = memory_budget(deployment)
        self.hbm_capacity_bytes.labels(**labels).set(budget.hbm_bytes)
        for kind, num_bytes in (("weights", budget.weight_bytes),
                                ("ep_buffers", budget.ep_buffer_bytes),
                                ("kv", budget.kv_bytes), ("reserve", budget.reserve_bytes)):
            self.hbm_used_bytes.labels(**labels, kind=kind).set(num_bytes)
        self.cache_config.labels(
            **labels, block_size=str(block_size), num_gpu_blocks=str(num_kv_tokens // block_size),
            enable_prefix_caching=str(prefix_caching), cache_dtype=deployment.kv_dtype,
            gpu_memory_utilization=f"{1 - deployment.hbm_reserve_fraction:g}").set(1)
        for plane in ("ub", "rdma") if role == "prefill" else ("ub",):
            self.link_busy_seconds.labels(**labels, plane=plane)

    def on_step(self, timing: Timing) -> None:
        """Record one modelled batch or step (a hot path: labelled children are cached)."""
        child = self._child
        child(self.busy_seconds).inc(timing.total_s)
        child(self.step_seconds).observe(timing.total_s)
        for part, seconds in timing.breakdown.items():
            child(self.step_part_seconds, part=part).inc(seconds)
        child(self.compute_util).set(timing.compute_util)
        child(self.hbm_util).set(timing.hbm_util)
        ub_s = sum(timing.breakdown.get(part, 0.0) for part in UB_PARTS)
        child(self.link_busy_seconds, plane="ub").inc(ub_s)
        d = self._deployment
        if d is not None and d.model.is_moe and timing.num_tokens:
            load = expert_load(d, moe_tokens_per_die(d, self._role, timing))
            child(self.expert_imbalance).set(load.imbalance)

    def forget_children(self) -> None:
        """Drop the cached children: the labels changed (a model switch)."""
        self._children.clear()

    def _child(self, metric: Any, **extra: str) -> Any:
        key = (id(metric), *extra.items())
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(**self.labels, **extra)
        return found
