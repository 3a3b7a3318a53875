"""Prometheus series of one EMS replica, on a registry the caller owns (no global registry).

Counters count what this replica served; gauges mirror the pool (shared by all replicas on a
shared backend) as of the last refresh. Bytes are modelled KV bytes (true sizes) unless the name
says payload; `plane` is the fabric the reader said it uses ("ub" or "vpc").
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

PLANES = ("ub", "vpc")
"""Planes a client may name in the `x-supernode-plane` metadata."""


class EmsMetrics:
    """The EMS series, created on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
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
        self._precreate()

    def _precreate(self) -> None:
        """Fixed label values at zero, so rate() panels have data before the first call."""
        for plane in PLANES:
            for counter in (self.read_blocks, self.read_tokens, self.read_bytes,
                            self.read_payload_bytes, self.written_bytes,
                            self.written_payload_bytes):
                counter.labels(plane)
        for result in ("stored", "deduplicated", "over_capacity", "bad_checksum", "invalid"):
            self.put_blocks.labels(result)
