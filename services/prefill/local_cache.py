"""A prefill instance's own prefix cache, for the `kv-affinity` (KV-centric) design.

In KV-centric systems (Mooncake, Dynamo) each node caches KV in its own host DRAM and reaches
it over intra-node PCIe; the scheduler routes requests to where their KV is (see
`supernode.policy.kv_affinity`). Here the cache is an in-process `MemoryBlockStore` per
instance, holding its share of the pool's DRAM (`cache.capacity_bytes / num_prefill`, so both
designs have the same DRAM in total), with the same rules as EMS: longest prefix, verified
checksums, LRU, asynchronous stores. Another instance's cache is never read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import aclosing

from services.prefill.cache_client import CacheHit, num_usable_blocks
from services.prefill.metrics import PrefillMetrics
from supernode.cache.hashing import block_keys
from supernode.cache.memory_store import MemoryBlockStore
from supernode.cache.payload import checksum, make_payload, payload_num_bytes
from supernode.cache.store import StoredBlock
from supernode.config import CacheConfig
from supernode.hardware.spec import Link

LOCAL_DRAM_LINK = Link("local_pcie", bandwidth_bytes_per_s=256e9, latency_s=1.0e-6)
"""NPU <-> its own node's host DRAM in a KV-centric system. 256 GB/s is the paper's intra-node
PCIe figure for such systems (calibration notes s1.5 and s5, "Contrast with KV-centric
designs"), taken as achieved per device and the same on every hardware profile; the latency is
the measured intra-node NPU->CPU read latency (notes s1.4, P2 Table 1: 1.0 us)."""


class LocalPrefixCache:
    """One instance's local cache with the `PrefixCache` interface; it never degrades."""

    def __init__(self, config: CacheConfig, capacity_bytes: int, kv_bytes_per_token: int,
                 payload_scale: float, metrics: PrefillMetrics,
                 link: Link = LOCAL_DRAM_LINK) -> None:
        self.config = config
        self.link = link
        self.kv_bytes_per_block = config.block_size * kv_bytes_per_token
        self.payload_num_bytes = payload_num_bytes(self.kv_bytes_per_block, payload_scale)
        self.metrics = metrics
        self.store = MemoryBlockStore(capacity_bytes, config.namespace_capacity_bytes or None)
        self._pending: set[asyncio.Task[None]] = set()

    async def flush(self) -> None:
        """Wait until the pending stores have landed."""
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        await self.flush()
        await self.store.close()

    async def fetch(self, namespace: str, token_ids: Sequence[int]) -> CacheHit:
        keys = tuple(block_keys(token_ids, self.config.block_size, namespace))
        usable = keys[:num_usable_blocks(len(token_ids), self.config.block_size)]
        num_ok = 0
        if usable and await self.store.lookup(namespace, usable):
            async with aclosing(self.store.get(namespace, usable)) as blocks:
                async for block in blocks:
                    if block is None:
                        break
                    if block.key != usable[num_ok] or checksum(block.payload) != block.crc32:
                        self.metrics.cache_rejected_blocks.labels(**self.metrics.labels).inc()
                        break
                    num_ok += 1
        m = self.metrics
        m.prefix_queries.labels(**m.labels).inc(len(token_ids))
        m.prefix_hits.labels(**m.labels).inc(num_ok * self.config.block_size)
        return CacheHit(keys, num_ok, num_ok * self.config.block_size,
                        num_ok * self.kv_bytes_per_block)

    def store_later(self, namespace: str, hit: CacheHit, num_prompt_tokens: int) -> None:
        num_full = num_prompt_tokens // self.config.block_size
        new_keys = hit.keys[hit.num_cached_blocks:num_full]
        if new_keys:
            task = asyncio.create_task(self._put(namespace, new_keys))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _put(self, namespace: str, keys: Sequence[bytes]) -> None:
        blocks = []
        for key in keys:
            payload = make_payload(key, self.payload_num_bytes)
            blocks.append(StoredBlock(key, payload, checksum(payload), self.kv_bytes_per_block,
                                      self.config.block_size))
        await self.store.put(namespace, blocks)
        m = self.metrics
        m.link_bytes.labels(**m.labels, plane=self.link.name, direction="out").inc(
            len(keys) * self.kv_bytes_per_block)
