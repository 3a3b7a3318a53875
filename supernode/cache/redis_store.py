"""Redis `BlockStore`: blocks, LRU order, leases and counters all live in Redis.

Several EMS replicas pointed at the same Redis (and the same key prefix) share one pool: every
read-modify-write is one Lua script (see `redis_lua` for the layout and scripts), so replicas
never race on recency, capacity or eviction. Capacities are the caller's; replicas sharing a pool
must be given the same ones. Any Redis error surfaces as `StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from supernode.cache import redis_lua
from supernode.cache.store import (
    DEFAULT_LEASE_S,
    PutResult,
    StoredBlock,
    StoreStats,
    StoreUnavailable,
    check_kind,
)

DEFAULT_KEY_PREFIX = "supernode:ems"

_T = TypeVar("_T")
_PUT_STATUS = {1: PutResult(num_stored=1), 2: PutResult(num_deduplicated=1)}
_ROOT_TAGS = {"kv": b"ns", "model": b"model"}


def connect(redis_url: str, timeout_s: float = 2.0) -> aioredis.Redis:
    """A client for `redis_url` that fails fast (one quick retry, then the error), lazily connected."""
    return aioredis.Redis.from_url(
        redis_url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
    )


class RedisBlockStore:
    """A `BlockStore` kept in Redis (see supernode.cache.store for the rules)."""

    backend = "redis"

    def __init__(
        self,
        client: aioredis.Redis,
        capacity_bytes: int,
        namespace_capacity_bytes: int | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        """Takes ownership of `client` (closed by `close`). No I/O until the first call."""
        if capacity_bytes < 1:
            raise ValueError(f"capacity_bytes must be >= 1, got {capacity_bytes}")
        self._client = client
        self._capacity_bytes = capacity_bytes
        self._namespace_capacity_bytes = min(
            namespace_capacity_bytes or capacity_bytes, capacity_bytes
        )
        self._lease_ms = max(1, round(lease_s * 1000))
        self._prefix = key_prefix.encode("utf-8")
        self._lookup = client.register_script(redis_lua.LOOKUP)
        self._lease = client.register_script(redis_lua.LEASE)
        self._release = client.register_script(redis_lua.RELEASE)
        self._put = client.register_script(redis_lua.PUT)
        self._closed = False

    async def lookup(self, namespace: str, keys: Sequence[bytes], kind: str = "kv") -> int:
        root = self._root(namespace, kind)
        script_keys = [
            self._key(b"tick"),
            root + b":lru",
            self._key(b"lru"),
            root + b":st",
            self._key(b"st"),
            self._nss(kind),
            self._kind_stats(kind),
            *(self._block(root, key) for key in keys),
        ]
        return int(await _call(self._lookup(keys=script_keys, args=[namespace])))

    async def get(
        self, namespace: str, keys: Sequence[bytes], kind: str = "kv"
    ) -> AsyncIterator[StoredBlock | None]:
        root = self._root(namespace, kind)
        names = [self._block(root, key) for key in keys]
        script_keys = [self._key(b"tick"), root + b":lru", self._key(b"lru"), *names]
        num_leased = int(await _call(self._lease(keys=script_keys, args=[self._lease_ms])))
        leased = names[:num_leased]
        try:
            for key, name in zip(keys, leased):
                payload, crc32, true_num_bytes, num_tokens = await _call(
                    self._client.hmget(name, [b"p", b"c", b"t", b"n"])
                )
                if payload is None:  # the lease expired and the block went
                    yield None
                    return
                yield StoredBlock(key, payload, int(crc32), int(true_num_bytes), int(num_tokens))
            if num_leased < len(keys):
                yield None
        finally:
            if leased:
                try:
                    await self._release(keys=leased)
                except RedisError:
                    pass  # the lease expires by itself after lease_s

    async def put(
        self, namespace: str, blocks: Sequence[StoredBlock], kind: str = "kv"
    ) -> PutResult:
        root = self._root(namespace, kind)
        if not blocks:
            return PutResult()
        namespace_limit = self._namespace_capacity_bytes if kind == "kv" else self._capacity_bytes
        top = int(await _call(self._client.incrby(self._key(b"tick"), len(blocks))))
        result = PutResult()
        present: list[bytes] = []
        for index, block in enumerate(blocks):
            name = self._block(root, block.key)
            script_keys = [
                name,
                root + b":lru",
                self._key(b"lru"),
                root + b":st",
                self._key(b"st"),
                self._nss(kind),
                self._kind_stats(kind),
            ]
            args = [
                block.payload,
                block.crc32,
                block.true_num_bytes,
                block.num_tokens,
                root,
                namespace_limit,
                self._capacity_bytes,
                namespace,
                top - index,
                *present,
            ]
            status, num_evicted = await _call(self._put(keys=script_keys, args=args))
            if status:
                present.append(name)
            result += _PUT_STATUS.get(int(status), PutResult(num_rejected=1))
            result += PutResult(num_evicted=int(num_evicted))
        return result

    async def stats(self, namespace: str | None = None, kind: str | None = None) -> StoreStats:
        capacity_bytes = self._capacity_bytes
        if namespace is None:
            stats_key = self._key(b"st") if kind is None else self._kind_stats(kind)
        else:
            stats_key = self._root(namespace, kind or "kv") + b":st"
            if (kind or "kv") == "kv":
                capacity_bytes = self._namespace_capacity_bytes
        raw = await _call(self._client.hgetall(stats_key))
        fields = {k.decode(): int(v) for k, v in raw.items()}
        return StoreStats(
            backend=self.backend,
            num_blocks=fields.get("blocks", 0),
            used_bytes=fields.get("used", 0),
            payload_bytes=fields.get("payload", 0),
            capacity_bytes=capacity_bytes,
            namespace_capacity_bytes=self._namespace_capacity_bytes,
            num_lookups=fields.get("lookups", 0),
            num_queried_blocks=fields.get("queried", 0),
            num_hit_blocks=fields.get("hits", 0),
            num_evictions=fields.get("evictions", 0),
        )

    async def used_bytes_by_namespace(self, kind: str = "kv") -> dict[str, int]:
        names = sorted(
            n.decode("utf-8") for n in await _call(self._client.smembers(self._nss(kind)))
        )
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(self._root(name, kind) + b":st", "used")
            used = await _call(pipe.execute())
        return {name: int(value or 0) for name, value in zip(names, used)}

    async def put_manifest(self, model_key: str, manifest: str) -> None:
        await _call(self._client.hset(self._key(b"models"), model_key, manifest))

    async def get_manifest(self, model_key: str) -> str | None:
        value = await _call(self._client.hget(self._key(b"models"), model_key))
        return None if value is None else value.decode("utf-8")

    async def manifests(self) -> dict[str, str]:
        raw = await _call(self._client.hgetall(self._key(b"models")))
        return {k.decode("utf-8"): v.decode("utf-8") for k, v in raw.items()}

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    def _key(self, suffix: bytes) -> bytes:
        return self._prefix + b":" + suffix

    def _root(self, namespace: str, kind: str = "kv") -> bytes:
        encoded = namespace.encode("utf-8")
        tag = _ROOT_TAGS[check_kind(kind)]
        return self._prefix + b":" + tag + b":" + str(len(encoded)).encode() + b":" + encoded

    def _nss(self, kind: str) -> bytes:
        return self._key(b"nss") if check_kind(kind) == "kv" else self._key(b"nss:" + kind.encode())

    def _kind_stats(self, kind: str) -> bytes:
        return self._key(b"st:" + check_kind(kind).encode())

    @staticmethod
    def _block(root: bytes, key: bytes) -> bytes:
        return root + b":b:" + key


async def _call(awaitable: Awaitable[_T]) -> _T:
    """Await a Redis call, turning any Redis failure into StoreUnavailable."""
    try:
        return await awaitable
    except RedisError as exc:
        raise StoreUnavailable(f"redis backend failed: {type(exc).__name__}: {exc}") from exc
