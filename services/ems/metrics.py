"""Prometheus series of one EMS replica, on a registry the caller owns (no global registry).

Counters count what this replica served; gauges mirror the pool (shared by all replicas on a
shared backend) as of the last refresh. Bytes are modelled KV bytes (true sizes) unless the name
says payload; `plane` is the fabric the reader said it uses ("ub" or "vpc").

`namespace` comes from the client (`x-supernode-namespace`), so its values are capped: the first
`max_namespaces` distinct namespaces this replica sees keep their own label, every later one is
reported under `namespace="_other"` (`namespace_label`).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from supernode.cache.store import BLOCK_KINDS, StoreStats
from supernode.perf.load import SOURCES

PLANES = ("ub", "vpc")
"""Planes a client may name in the `x-supernode-plane` metadata."""

MAX_NAMESPACE_LABELS = 64
"""Distinct `namespace` label values one replica exports before folding the rest into
`OTHER_NAMESPACE`."""

MODEL_LOAD_BUCKETS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
"""Model seconds: EMS and DRAM loads take about a second, OBS loads minutes to an hour."""

OTHER_NAMESPACE = "_other"
"""The `namespace` label of every namespace past the first `max_namespaces`."""


class EmsMetrics:
    """The EMS series, created on `registry`."""

    def __init__(
        self, registry: CollectorRegistry, max_namespaces: int = MAX_NAMESPACE_LABELS
    ) -> None:
        if max_namespaces < 0:
            raise ValueError(f"max_namespaces must be >= 0, got {max_namespaces}")
        self.max_namespaces = max_namespaces
        self._namespaces: set[str] = set()
        self._used_labels: set[str] = set()
        self._add_lookup_counters(registry)
        self._add_pool_gauges(registry)
        self._add_read_counters(registry)
        self._add_write_counters(registry)
        self._add_backend_series(registry)
        self._add_kind_gauges(registry)
        self._add_model_series(registry)
        self._precreate()

    def _add_lookup_counters(self, r: CollectorRegistry) -> None:
        self.lookups = Counter("supernode_ems_lookups", "Lookup calls.", ["namespace"], registry=r)
        self.queried_blocks = Counter(
            "supernode_ems_queried_blocks",
            "Blocks asked about by Lookup.",
            ["namespace"],
            registry=r,
        )
        self.hit_blocks = Counter(
            "supernode_ems_hit_blocks",
            "Leading blocks found by Lookup.",
            ["namespace"],
            registry=r,
        )

    def _add_pool_gauges(self, r: CollectorRegistry) -> None:
        self.hit_ratio = Gauge(
            "supernode_ems_hit_ratio",
            "Pool-wide hit blocks over queried blocks by Lookup since the pool was created.",
            registry=r,
        )
        self.blocks = Gauge("supernode_ems_blocks", "Blocks held in the pool.", registry=r)
        self.used_bytes = Gauge(
            "supernode_ems_used_bytes",
            "Modelled KV bytes held, per namespace.",
            ["namespace"],
            registry=r,
        )
        self.payload_bytes = Gauge(
            "supernode_ems_payload_bytes", "Payload bytes actually held in the pool.", registry=r
        )
        self.capacity_bytes = Gauge(
            "supernode_ems_capacity_bytes", "Pool capacity in modelled KV bytes.", registry=r
        )
        self.namespace_capacity_bytes = Gauge(
            "supernode_ems_namespace_capacity_bytes",
            "Capacity of each namespace in modelled KV bytes.",
            registry=r,
        )
        self.evictions = Counter(
            "supernode_ems_evictions",
            "Blocks evicted to make room for this replica's puts.",
            registry=r,
        )

    def _add_read_counters(self, r: CollectorRegistry) -> None:
        self.read_blocks = Counter(
            "supernode_ems_read_blocks", "Blocks served by Get.", ["plane"], registry=r
        )
        self.read_tokens = Counter(
            "supernode_ems_read_tokens",
            "Tokens whose KV was served by Get.",
            ["plane"],
            registry=r,
        )
        self.read_bytes = Counter(
            "supernode_ems_read_bytes", "Modelled KV bytes served by Get.", ["plane"], registry=r
        )
        self.read_payload_bytes = Counter(
            "supernode_ems_read_payload_bytes",
            "Payload bytes sent by Get.",
            ["plane"],
            registry=r,
        )
        self.missed_blocks = Counter(
            "supernode_ems_get_missed_blocks",
            "Get streams cut short by a missing block (evicted since Lookup, or never stored).",
            registry=r,
        )

    def _add_write_counters(self, r: CollectorRegistry) -> None:
        self.written_bytes = Counter(
            "supernode_ems_written_bytes",
            "Modelled KV bytes of verified blocks received by Put.",
            ["plane"],
            registry=r,
        )
        self.written_payload_bytes = Counter(
            "supernode_ems_written_payload_bytes",
            "Payload bytes of verified blocks received by Put.",
            ["plane"],
            registry=r,
        )
        self.put_blocks = Counter(
            "supernode_ems_put_blocks",
            "Blocks received by Put, by outcome.",
            ["result"],
            registry=r,
        )
        self.checksum_rejections = Counter(
            "supernode_ems_checksum_rejections",
            "Put blocks whose payload did not match their crc32.",
            registry=r,
        )

    def _add_backend_series(self, r: CollectorRegistry) -> None:
        self.backend_errors = Counter(
            "supernode_ems_backend_errors",
            "Calls failed because the store backend did.",
            ["rpc"],
            registry=r,
        )
        self.backend_up = Gauge(
            "supernode_ems_backend_up",
            "1 while the store backend answers, 0 after it failed.",
            registry=r,
        )
        self.backend_up.set(1)

    def _add_kind_gauges(self, r: CollectorRegistry) -> None:
        self.kind_blocks = Gauge(
            "supernode_ems_kind_blocks", "Blocks held in the pool, by kind (kv, model).",
            ["kind"], registry=r)
        self.kind_used_bytes = Gauge(
            "supernode_ems_kind_used_bytes", "Modelled bytes held in the pool, by kind.",
            ["kind"], registry=r)
        self.kind_hit_blocks = Gauge(
            "supernode_ems_kind_hit_blocks",
            "Leading blocks found by lookups since the pool was created, by kind.",
            ["kind"], registry=r)
        self.kind_queried_blocks = Gauge(
            "supernode_ems_kind_queried_blocks",
            "Blocks asked about by lookups since the pool was created, by kind.",
            ["kind"], registry=r)
        self.kind_evicted_blocks = Gauge(
            "supernode_ems_kind_evicted_blocks",
            "Blocks evicted since the pool was created, by kind.", ["kind"], registry=r)

    def _add_model_series(self, r: CollectorRegistry) -> None:
        self.model_loads = Counter(
            "supernode_ems_model_loads", "Model loads completed, by source (ems, dram, obs).",
            ["source"], registry=r)
        self.model_loads_in_flight = Gauge(
            "supernode_ems_model_loads_in_flight", "Model loads in progress, by source.",
            ["source"], registry=r)
        self.model_load_seconds = Histogram(
            "supernode_ems_model_load_seconds", "Modelled time of one model load, by source.",
            ["source"], buckets=MODEL_LOAD_BUCKETS, registry=r)
        self.model_read_bytes = Counter(
            "supernode_ems_model_read_bytes", "Modelled model-block bytes served to loads.",
            registry=r)
        self.model_written_bytes = Counter(
            "supernode_ems_model_written_bytes",
            "Modelled model-block bytes stored by prefetches and warming loads.", registry=r)
        self.model_prefetches = Counter(
            "supernode_ems_model_prefetches", "Prefetches from OBS, by outcome.", ["result"],
            registry=r)
        self.model_too_large = Counter(
            "supernode_ems_model_too_large",
            "Model images that could not be cached because they exceed the pool.", registry=r)

    def _precreate(self) -> None:
        """Fixed label values at zero, so rate() panels have data before the first call."""
        for plane in PLANES:
            for counter in (self.read_blocks, self.read_tokens, self.read_bytes,
                            self.read_payload_bytes, self.written_bytes,
                            self.written_payload_bytes):
                counter.labels(plane)
        for result in ("stored", "deduplicated", "over_capacity", "bad_checksum", "invalid"):
            self.put_blocks.labels(result)
        for kind in BLOCK_KINDS:
            for gauge in (self.kind_blocks, self.kind_used_bytes, self.kind_hit_blocks,
                          self.kind_queried_blocks, self.kind_evicted_blocks):
                gauge.labels(kind)
        for source in SOURCES:
            for series in (self.model_loads, self.model_loads_in_flight,
                           self.model_load_seconds):
                series.labels(source)
        for result in ("started", "done", "failed"):
            self.model_prefetches.labels(result)

    def namespace_label(self, namespace: str) -> str:
        """`namespace` itself while it is one of the first `max_namespaces` seen, else `_other`."""
        if namespace in self._namespaces:
            return namespace
        if len(self._namespaces) < self.max_namespaces:
            self._namespaces.add(namespace)
            return namespace
        return OTHER_NAMESPACE

    def count_lookup(self, namespace: str, num_queried: int, num_hits: int) -> None:
        """One Lookup call in `namespace`: blocks asked about and leading blocks found."""
        label = self.namespace_label(namespace)
        self.lookups.labels(label).inc()
        self.queried_blocks.labels(label).inc(num_queried)
        self.hit_blocks.labels(label).inc(num_hits)

    def set_used_bytes(self, used_by_namespace: Mapping[str, int]) -> None:
        """Mirror the pool's bytes per namespace: namespaces sharing a label are summed, and a
        label exported before whose namespaces hold nothing now drops to 0."""
        by_label: dict[str, int] = {}
        for namespace, num_bytes in used_by_namespace.items():
            label = self.namespace_label(namespace)
            by_label[label] = by_label.get(label, 0) + num_bytes
        for label in self._used_labels - by_label.keys():
            self.used_bytes.labels(label).set(0)
        for label, num_bytes in by_label.items():
            self.used_bytes.labels(label).set(num_bytes)
        self._used_labels |= by_label.keys()

    def set_kind_stats(self, kind: str, stats: StoreStats) -> None:
        """Mirror one kind's pool-wide occupancy and counters."""
        self.kind_blocks.labels(kind).set(stats.num_blocks)
        self.kind_used_bytes.labels(kind).set(stats.used_bytes)
        self.kind_hit_blocks.labels(kind).set(stats.num_hit_blocks)
        self.kind_queried_blocks.labels(kind).set(stats.num_queried_blocks)
        self.kind_evicted_blocks.labels(kind).set(stats.num_evictions)
