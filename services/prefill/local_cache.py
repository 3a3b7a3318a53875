"""A prefill instance's own prefix cache, for the `kv-affinity` (KV-centric) design.

In KV-centric systems (Mooncake, Dynamo) each node caches KV in its own host DRAM and reaches
it over intra-node PCIe; the scheduler routes requests to where their KV is (see
`supernode.policy.kv_affinity`). Here the cache is an in-process `MemoryBlockStore` per
instance, holding its share of the pool's DRAM (`cache.capacity_bytes / num_prefill`, so both
designs have the same DRAM in total), with the same rules as EMS: longest prefix, verified
checksums, LRU, asynchronous stores. Another instance's cache is never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing

from services.prefill.cache_client import CacheBase, CacheHit
from services.prefill.metrics import PrefillMetrics
from supernode.cache.hashing import block_keys
from supernode.cache.memory_store import MemoryBlockStore
from supernode.cache.payload import checksum, make_payload, payload_num_bytes
from supernode.cache.store import StoredBlock
from supernode.config import CacheConfig
from supernode.hardware import LOCAL_DRAM_LINK, Link
from supernode.lifecycle.cache import num_usable_blocks


class LocalPrefixCache(CacheBase):
    """One instance's local cache with the `PrefixCache` interface; it never degrades."""

    def __init__(self, config: CacheConfig, capacity_bytes: int, kv_bytes_per_token: int,
                 payload_scale: float, metrics: PrefillMetrics,
                 link: Link = LOCAL_DRAM_LINK) -> None:
        super().__init__(config, kv_bytes_per_token, payload_scale, metrics, link)
        self.payload_num_bytes = payload_num_bytes(self.kv_bytes_per_block, payload_scale)
        self.store = MemoryBlockStore(capacity_bytes, config.namespace_capacity_bytes or None)

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
        return self._hit(keys, len(token_ids), num_ok)

    async def _put(self, namespace: str, keys: Sequence[bytes]) -> None:
        blocks = []
        for key in keys:
            payload = make_payload(key, self.payload_num_bytes)
            blocks.append(StoredBlock(key, payload, checksum(payload), self.kv_bytes_per_block,
                                      self.config.block_size))
        await self.store.put(namespace, blocks)
        self._count_stored(len(keys))
