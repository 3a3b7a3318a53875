"""The block store contract: what EMS keeps, how it is found, leased, and evicted.

A store holds KV blocks keyed by (namespace, chained block key) (see `hashing.block_keys`). Its
rules, identical for every backend (tests/cache runs the same cases against each):

- **Longest prefix.** `lookup` counts the leading keys present and stops at the first miss: a
  block after a gap is unusable, since its KV depends on the missing one.
- **Dedup.** A key already present is not stored again; `put` counts it as deduplicated and
  refreshes its recency.
- **Capacity** is in modelled KV bytes (each block's `true_num_bytes`), overall and per
  namespace, so the hit rate does not depend on the payload scale. The payload bytes actually
  held are reported beside it.
- **LRU eviction.** `lookup` (its hits), `get` (the blocks it leases) and `put` (the blocks it
  stores or deduplicates) make their blocks the most recent, earlier blocks of one call more
  recent than later ones, so a chain's tail is evicted before its head (as in vLLM). A block
  that does not fit evicts least-recently-used blocks: first from its own namespace until the
  namespace fits, then from any namespace until the pool fits, never a leased block nor one the
  same `put` call stored or deduplicated. If it cannot fit even then (it is larger than a limit,
  or too few candidates are left) it is rejected and nothing is evicted for it.
- **Leases.** `get` leases the leading present blocks before yielding the first one and releases
  them when the iterator is closed, so a block being read is never evicted mid-read. A lease
  expires after `lease_s` even if never released (a reader that crashed).
- **Namespaces** are isolated: the same key in two namespaces is two blocks.
- **Kinds.** Every call names a block kind (`BLOCK_KINDS`: "kv" by default, or "model" for
  model weights, see `supernode.cache.models`); a kind is a separate set of namespaces, so a
  model namespace never collides with a KV one. Both kinds share the pool capacity and the
  one LRU order; the per-namespace capacity is a tenant limit and applies to KV only (a model
  namespace is limited by the pool alone). Stats are kept per kind as well as overall.
- **Model manifests** (`put_manifest`, `get_manifest`, `manifests`) are small texts by model
  key, kept beside the blocks in the same backend (so a Redis pool keeps them across EMS
  restarts). They are metadata: never evicted, not counted in capacity.
- **Failures** of a remote backend surface as `StoreUnavailable`, never as a wrong answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

BLOCK_KINDS = ("kv", "model")
"""What a block holds: a KV-cache block, or a block of a model's weights."""

DEFAULT_LEASE_S = 30.0
"""How long a `get` lease outlives a reader that never releases it (wall seconds)."""


def check_kind(kind: str) -> str:
    """`kind` if it is one of `BLOCK_KINDS`, else ValueError naming it."""
    if kind not in BLOCK_KINDS:
        raise ValueError(f"unknown block kind {kind!r}; expected one of {BLOCK_KINDS}")
    return kind


class StoreUnavailable(Exception):
    """The backend cannot be reached or failed; the operation had no effect or an unknown one."""


@dataclass(frozen=True, slots=True)
class StoredBlock:
    """One KV block as stored: a synthetic payload plus the modelled size it stands for."""

    key: bytes
    payload: bytes
    crc32: int
    """zlib.crc32 of `payload`, as sent by the writer (the store does not recompute it)."""
    true_num_bytes: int
    """Modelled KV bytes of the block; what capacity is charged in. Must be >= 1."""
    num_tokens: int

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a block key must not be empty")
        if self.true_num_bytes < 1:
            raise ValueError(f"true_num_bytes must be >= 1, got {self.true_num_bytes}")
        if self.num_tokens < 0:
            raise ValueError(f"num_tokens must be >= 0, got {self.num_tokens}")
        if not 0 <= self.crc32 <= 0xFFFFFFFF:
            raise ValueError(f"crc32 must be an unsigned 32-bit int, got {self.crc32}")


@dataclass(frozen=True, slots=True)
class PutResult:
    """What one `put` did with its blocks (each block is counted once among the first three)."""

    num_stored: int = 0
    num_deduplicated: int = 0
    num_rejected: int = 0
    """Blocks that could not fit (larger than a limit, or only leased blocks left to evict)."""
    num_evicted: int = 0
    """Blocks evicted, from any namespace, to make room."""

    def __add__(self, other: PutResult) -> PutResult:
        return PutResult(
            self.num_stored + other.num_stored,
            self.num_deduplicated + other.num_deduplicated,
            self.num_rejected + other.num_rejected,
            self.num_evicted + other.num_evicted,
        )


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Occupancy and counters of one namespace, or of the whole pool.

    Counters are cumulative since the pool was created (shared by every replica on a shared
    backend). `num_evictions` counts blocks evicted *from* this namespace.
    """

    backend: str
    num_blocks: int
    used_bytes: int
    """Modelled KV bytes held (sum of true_num_bytes)."""
    payload_bytes: int
    """Payload bytes actually held."""
    capacity_bytes: int
    """The limit on `used_bytes`: the pool's, or the namespace's."""
    namespace_capacity_bytes: int
    """The limit of each namespace (the same in both scopes)."""
    num_lookups: int
    num_queried_blocks: int
    num_hit_blocks: int
    num_evictions: int

    @property
    def hit_ratio(self) -> float | None:
        """Hit blocks over queried blocks by `lookup`; None before any block was queried."""
        if self.num_queried_blocks == 0:
            return None
        return self.num_hit_blocks / self.num_queried_blocks


class BlockStore(Protocol):
    """A pool of KV blocks with the rules in this module's docstring. Not thread-safe; asyncio."""

    @property
    def backend(self) -> str:
        """The backend's name in `STORE_BACKENDS` ("memory", "redis")."""
        ...

    async def lookup(self, namespace: str, keys: Sequence[bytes], kind: str = "kv") -> int:
        """Number of leading `keys` present; touches them; counts a lookup, queries and hits."""
        ...

    def get(
        self, namespace: str, keys: Sequence[bytes], kind: str = "kv"
    ) -> AsyncIterator[StoredBlock | None]:
        """Yield the leading present blocks in order, then None once if a key was missing.

        Nothing is yielded after the None. The present blocks are leased until the iterator is
        closed: use `contextlib.aclosing` (or exhaust it) so the lease is released promptly.
        Does not count as a lookup in the stats.
        """
        ...

    async def put(
        self, namespace: str, blocks: Sequence[StoredBlock], kind: str = "kv"
    ) -> PutResult:
        """Store `blocks` (dedup by key, evicting LRU blocks to fit); see the module rules."""
        ...

    async def stats(self, namespace: str | None = None, kind: str | None = None) -> StoreStats:
        """Stats of one namespace of `kind` ("kv" if None; zeros if never used); with no
        namespace, of every block of `kind`, or of the whole pool when `kind` is None too."""
        ...

    async def used_bytes_by_namespace(self, kind: str = "kv") -> dict[str, int]:
        """Modelled bytes held per namespace of `kind`, for every namespace ever written."""
        ...

    async def put_manifest(self, model_key: str, manifest: str) -> None:
        """Record (or replace) the manifest text of `model_key`."""
        ...

    async def get_manifest(self, model_key: str) -> str | None:
        """The manifest text of `model_key`, or None if never recorded."""
        ...

    async def manifests(self) -> dict[str, str]:
        """Every recorded manifest, by model key."""
        ...

    async def close(self) -> None:
        """Release connections; the store must not be used afterwards. Idempotent."""
        ...
