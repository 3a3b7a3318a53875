"""In-process `BlockStore`: ordered dicts as LRU lists, the embedded default for `supernode up`.

Every method runs without awaiting in between, so each is atomic on the event loop; that is the
in-process counterpart of the Redis backend's Lua scripts.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from supernode.cache.store import (
    DEFAULT_LEASE_S,
    PutResult,
    StoredBlock,
    StoreStats,
    check_kind,
)

_SpaceId = tuple[str, str]
"""(kind, namespace)."""
_BlockId = tuple[str, str, bytes]
"""(kind, namespace, key)."""


@dataclass
class _Namespace:
    """One namespace's blocks, least recently used first, and its counters."""

    lru: OrderedDict[bytes, StoredBlock] = field(default_factory=OrderedDict)
    used_bytes: int = 0
    payload_bytes: int = 0
    num_lookups: int = 0
    num_queried_blocks: int = 0
    num_hit_blocks: int = 0
    num_evictions: int = 0


@dataclass
class _Lease:
    num_readers: int
    expires_at: float


class MemoryBlockStore:
    """A `BlockStore` held in this process (see supernode.cache.store for the rules)."""

    backend = "memory"

    def __init__(
        self,
        capacity_bytes: int,
        namespace_capacity_bytes: int | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`namespace_capacity_bytes` None: a namespace may fill the whole pool.

        `clock` returns seconds; it only times lease expiry.
        """
        if capacity_bytes < 1:
            raise ValueError(f"capacity_bytes must be >= 1, got {capacity_bytes}")
        self._capacity_bytes = capacity_bytes
        self._namespace_capacity_bytes = min(
            namespace_capacity_bytes or capacity_bytes, capacity_bytes
        )
        self._lease_s = lease_s
        self._clock = clock
        self._namespaces: dict[_SpaceId, _Namespace] = {}
        self._manifests: dict[str, str] = {}
        self._lru: OrderedDict[_BlockId, None] = OrderedDict()
        self._leases: dict[_BlockId, _Lease] = {}
        self._used_bytes = 0

    async def lookup(self, namespace: str, keys: Sequence[bytes], kind: str = "kv") -> int:
        return self.lookup_now(namespace, keys, kind)

    def lookup_now(self, namespace: str, keys: Sequence[bytes], kind: str = "kv") -> int:
        """`lookup` without the coroutine (the simulator's synchronous use)."""
        space_id = (check_kind(kind), namespace)
        space = self._namespace(space_id)
        hits = self._leading_hits(space_id, keys)
        self._touch(space_id, [block.key for block in hits])
        space.num_lookups += 1
        space.num_queried_blocks += len(keys)
        space.num_hit_blocks += len(hits)
        return len(hits)

    async def get(
        self, namespace: str, keys: Sequence[bytes], kind: str = "kv"
    ) -> AsyncIterator[StoredBlock | None]:
        space_id = (check_kind(kind), namespace)
        blocks = self._leading_hits(space_id, keys)
        self._touch(space_id, [block.key for block in blocks])
        for block in blocks:
            self._lease((*space_id, block.key))
        try:
            for block in blocks:
                yield block
            if len(blocks) < len(keys):
                yield None
        finally:
            for block in blocks:
                self._release((*space_id, block.key))

    async def put(
        self, namespace: str, blocks: Sequence[StoredBlock], kind: str = "kv"
    ) -> PutResult:
        return self.put_now(namespace, blocks, kind)

    def put_now(
        self, namespace: str, blocks: Sequence[StoredBlock], kind: str = "kv"
    ) -> PutResult:
        """`put` without the coroutine (the simulator's synchronous use)."""
        space_id = (check_kind(kind), namespace)
        space = self._namespace(space_id)
        fast = self._put_all(space_id, space, blocks)
        if fast is not None:
            return fast
        num_stored = num_deduplicated = num_rejected = num_evicted = 0
        present: list[bytes] = []
        protected: set[_BlockId] = set()
        for block in blocks:
            if block.key in space.lru:
                num_deduplicated += 1
            else:
                victims = self._plan_eviction(space_id, block.true_num_bytes, protected)
                if victims is None:
                    num_rejected += 1
                    continue
                for victim in victims:
                    self._evict(victim)
                num_evicted += len(victims)
                self._insert(space_id, space, block)
                num_stored += 1
            present.append(block.key)
            protected.add((*space_id, block.key))
        self._touch(space_id, present)
        return PutResult(num_stored, num_deduplicated, num_rejected, num_evicted)

    def _put_all(self, space_id: _SpaceId, space: _Namespace, blocks: Sequence[StoredBlock]
                 ) -> PutResult | None:
        """Store blocks that are all new and distinct with one eviction plan for them all (the
        simulator's common case); None (nothing changed) otherwise, or when they do not all
        fit, and `put_now` then goes block by block.

        The same victims as block by block: each block's plan would continue from the least
        recent end, where the blocks of this put are not."""
        lru = space.lru
        fresh = {block.key: block for block in blocks if block.key not in lru}
        if len(fresh) != len(blocks):
            return None
        victims = self._plan_eviction(space_id, sum(b.true_num_bytes for b in blocks), set())
        if victims is None:
            return None
        for victim in victims:
            self._evict(victim)
        for block in blocks:
            self._insert(space_id, space, block)
        self._touch(space_id, list(fresh))
        return PutResult(len(blocks), 0, 0, len(victims))

    async def stats(self, namespace: str | None = None, kind: str | None = None) -> StoreStats:
        if namespace is None:
            spaces = [s for (k, _), s in self._namespaces.items() if kind in (None, k)]
            capacity_bytes = self._capacity_bytes
        else:
            space_id = (check_kind(kind or "kv"), namespace)
            spaces = [self._namespaces.get(space_id, _Namespace())]
            capacity_bytes = self._limit(space_id[0])
        return StoreStats(
            backend=self.backend,
            num_blocks=sum(len(s.lru) for s in spaces),
            used_bytes=sum(s.used_bytes for s in spaces),
            payload_bytes=sum(s.payload_bytes for s in spaces),
            capacity_bytes=capacity_bytes,
            namespace_capacity_bytes=self._namespace_capacity_bytes,
            num_lookups=sum(s.num_lookups for s in spaces),
            num_queried_blocks=sum(s.num_queried_blocks for s in spaces),
            num_hit_blocks=sum(s.num_hit_blocks for s in spaces),
            num_evictions=sum(s.num_evictions for s in spaces),
        )

    async def used_bytes_by_namespace(self, kind: str = "kv") -> dict[str, int]:
        check_kind(kind)
        return {name: space.used_bytes for (k, name), space in self._namespaces.items()
                if k == kind}

    async def put_manifest(self, model_key: str, manifest: str) -> None:
        self._manifests[model_key] = manifest

    async def get_manifest(self, model_key: str) -> str | None:
        return self._manifests.get(model_key)

    async def manifests(self) -> dict[str, str]:
        return dict(self._manifests)

    async def close(self) -> None:
        pass

    def _namespace(self, space_id: _SpaceId) -> _Namespace:
        return self._namespaces.setdefault(space_id, _Namespace())

    def _limit(self, kind: str) -> int:
        """Capacity of one namespace of `kind`: the tenant limit for KV, the pool for models."""
        return self._namespace_capacity_bytes if kind == "kv" else self._capacity_bytes

    def _leading_hits(self, space_id: _SpaceId, keys: Sequence[bytes]) -> list[StoredBlock]:
        space = self._namespaces.get(space_id)
        hits: list[StoredBlock] = []
        for key in keys:
            block = space.lru.get(key) if space is not None else None
            if block is None:
                break
            hits.append(block)
        return hits

    def _touch(self, space_id: _SpaceId, keys: Sequence[bytes]) -> None:
        """Make `keys` the most recent, keys[0] most of all."""
        if not keys:
            return
        space = self._namespaces[space_id]
        for key in reversed(keys):
            space.lru.move_to_end(key)
            self._lru.move_to_end((*space_id, key))

    def _insert(self, space_id: _SpaceId, space: _Namespace, block: StoredBlock) -> None:
        space.lru[block.key] = block
        self._lru[(*space_id, block.key)] = None
        space.used_bytes += block.true_num_bytes
        space.payload_bytes += len(block.payload)
        self._used_bytes += block.true_num_bytes

    def _plan_eviction(
        self, space_id: _SpaceId, num_bytes: int, protected: set[_BlockId]
    ) -> list[_BlockId] | None:
        """LRU victims that make room for `num_bytes` in `space_id`; None if impossible."""
        limit = self._limit(space_id[0])
        if num_bytes > limit:
            return None
        space = self._namespaces[space_id]
        namespace_excess = space.used_bytes + num_bytes - limit
        pool_excess = self._used_bytes + num_bytes - self._capacity_bytes
        if namespace_excess <= 0 and pool_excess <= 0:
            return []
        victims: dict[_BlockId, None] = {}  # an insertion-ordered set
        leased = self._is_leased if self._leases else None
        freed = 0
        if namespace_excess > 0:  # first from its own namespace, least recent first
            kind, namespace = space_id
            for key, block in space.lru.items():
                if freed >= namespace_excess:
                    break
                block_id = (kind, namespace, key)
                if block_id in protected or (leased and leased(block_id)):
                    continue
                victims[block_id] = None
                freed += block.true_num_bytes
            if freed < namespace_excess:
                return None
        pool_excess -= freed
        if pool_excess > 0:  # then from any namespace
            spaces, freed = self._namespaces, 0
            for block_id in self._lru:
                if freed >= pool_excess:
                    break
                if block_id in protected or block_id in victims or (leased and leased(block_id)):
                    continue
                victims[block_id] = None
                freed += spaces[block_id[:2]].lru[block_id[2]].true_num_bytes
            if freed < pool_excess:
                return None
        return list(victims)

    def _evict(self, block_id: _BlockId) -> None:
        space = self._namespaces[block_id[:2]]
        key = block_id[2]
        block = space.lru.pop(key)
        del self._lru[block_id]
        space.used_bytes -= block.true_num_bytes
        space.payload_bytes -= len(block.payload)
        space.num_evictions += 1
        self._used_bytes -= block.true_num_bytes

    def _is_leased(self, block_id: _BlockId) -> bool:
        lease = self._leases.get(block_id)
        return lease is not None and lease.expires_at > self._clock()

    def _lease(self, block_id: _BlockId) -> None:
        expires_at = self._clock() + self._lease_s
        lease = self._leases.setdefault(block_id, _Lease(0, expires_at))
        lease.num_readers += 1
        lease.expires_at = max(lease.expires_at, expires_at)

    def _release(self, block_id: _BlockId) -> None:
        lease = self._leases.get(block_id)
        if lease is None:
            return
        lease.num_readers -= 1
        if lease.num_readers <= 0:
            del self._leases[block_id]
