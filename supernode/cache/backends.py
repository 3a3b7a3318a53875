"""The table of block-store backends, by the name used in config and on the CLI."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from supernode.cache.memory_store import MemoryBlockStore
from supernode.cache.redis_store import DEFAULT_KEY_PREFIX, RedisBlockStore, connect
from supernode.cache.store import DEFAULT_LEASE_S, BlockStore


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """How to build a block store."""

    backend: str = "memory"
    """A name in STORE_BACKENDS."""
    capacity_bytes: int = 64 * 2**30
    """Pool capacity in modelled KV bytes (true_num_bytes), over all namespaces."""
    namespace_capacity_bytes: int | None = None
    """Capacity of each namespace in modelled KV bytes; None: the pool capacity."""
    redis_url: str | None = None
    """redis://host:port/db; required by the "redis" backend, ignored by the others."""
    key_prefix: str = DEFAULT_KEY_PREFIX
    """Prefix of every Redis key; replicas sharing a pool use the same one."""
    lease_s: float = DEFAULT_LEASE_S
    """How long a read lease outlives a reader that never releases it (wall seconds)."""

    def __post_init__(self) -> None:
        if self.backend not in STORE_BACKENDS:
            raise ValueError(
                f"unknown store backend {self.backend!r}; one of {sorted(STORE_BACKENDS)}"
            )
        if self.capacity_bytes < 1:
            raise ValueError(f"capacity_bytes must be >= 1, got {self.capacity_bytes}")
        if self.namespace_capacity_bytes is not None and self.namespace_capacity_bytes < 1:
            raise ValueError(
                f"namespace_capacity_bytes must be >= 1 or None, got {self.namespace_capacity_bytes}"
            )
        if self.lease_s <= 0:
            raise ValueError(f"lease_s must be > 0, got {self.lease_s}")
        if self.backend == "redis" and not self.redis_url:
            raise ValueError('the "redis" store backend needs a redis_url')


def _make_memory(config: StoreConfig) -> BlockStore:
    return MemoryBlockStore(config.capacity_bytes, config.namespace_capacity_bytes, config.lease_s)


def _make_redis(config: StoreConfig) -> BlockStore:
    assert config.redis_url is not None  # StoreConfig checked it
    return RedisBlockStore(
        connect(config.redis_url),
        config.capacity_bytes,
        config.namespace_capacity_bytes,
        config.lease_s,
        config.key_prefix,
    )


STORE_BACKENDS: Mapping[str, Callable[[StoreConfig], BlockStore]] = {
    "memory": _make_memory,
    "redis": _make_redis,
}


def make_store(config: StoreConfig) -> BlockStore:
    """Build the store `config.backend` names. Connects lazily: no I/O here."""
    return STORE_BACKENDS[config.backend](config)
