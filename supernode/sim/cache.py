"""The prefix caches in the simulator: the live EMS's own store (`MemoryBlockStore`: the same
longest-prefix, LRU, capacity and namespace rules), holding keys with empty payloads.

One store is shared by every prefill instance (EMS), or each instance has its own with its
share of the capacity (kv-affinity), as in the live deployment. The rules of what is looked up
and stored are the lifecycle's (`supernode.lifecycle.cache`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from supernode.cache.memory_store import MemoryBlockStore
from supernode.cache.store import StoredBlock
from supernode.config import ClusterConfig
from supernode.lifecycle.cache import (
    decode_blocks_to_store,
    keys_to_store,
    num_usable_blocks,
    uses_local_cache,
)


class SimPrefixCache:
    """A prefix cache of block keys; `kv_bytes_per_block` is what capacity is charged."""

    def __init__(self, store: MemoryBlockStore, block_size: int, kv_bytes_per_block: int) -> None:
        self.store = store
        self.block_size = block_size
        self.kv_bytes_per_block = kv_bytes_per_block

    def lookup(self, namespace: str, keys: Sequence[bytes], num_prompt_tokens: int) -> int:
        """Leading cached blocks of the prompt that the prefill may use."""
        usable = num_usable_blocks(num_prompt_tokens, self.block_size)
        return self.store.lookup_now(namespace, keys[:usable]) if usable else 0

    def store_prompt(self, namespace: str, keys: Sequence[bytes], num_cached_blocks: int,
                     num_prompt_tokens: int) -> None:
        self._put(namespace, keys_to_store(keys, num_cached_blocks, num_prompt_tokens,
                                           self.block_size))

    def store_decode(self, namespace: str, request_id: str, num_prompt_tokens: int,
                     num_output_tokens: int) -> None:
        """Decode-generated blocks take their room in the pool. Their keys are the request's
        own: synthetic outputs never reappear in a later prompt of a simulated workload."""
        blocks = decode_blocks_to_store(num_prompt_tokens, num_output_tokens, self.block_size)
        self._put(namespace, [hashlib.blake2b(f"{request_id}:{i}".encode(), digest_size=16)
                              .digest() for i in blocks])

    def _put(self, namespace: str, keys: Sequence[bytes]) -> None:
        if keys:
            self.store.put_now(namespace, [
                StoredBlock(key, b"", 0, self.kv_bytes_per_block, self.block_size)
                for key in keys])


def build_caches(config: ClusterConfig, kv_bytes_per_token: int) -> list[SimPrefixCache | None]:
    """One cache per prefill instance: the shared EMS, or local ones under kv-affinity."""
    cache, n = config.cache, config.num_prefill
    if not cache.enabled:
        return [None] * n
    block_bytes = cache.block_size * kv_bytes_per_token
    per_namespace = cache.namespace_capacity_bytes or None
    if uses_local_cache(config.routing_policy):
        return [SimPrefixCache(MemoryBlockStore(max(1, cache.capacity_bytes // n), per_namespace),
                               cache.block_size, block_bytes) for _ in range(n)]
    shared = SimPrefixCache(MemoryBlockStore(cache.capacity_bytes, per_namespace),
                            cache.block_size, block_bytes)
    return [shared] * n
