"""Prefill's use of EMS: look up the prompt's prefix, fetch the hits, store new blocks later.

EMS is optional at every moment: any failed or slow call makes this request run without the
cache (full compute) and marks the cache degraded in metrics and logs. A circuit breaker
(services.common.circuit_breaker, `cache.breaker_*`) keeps a frozen or dead EMS from costing
every request its timeout: after consecutive failures it opens and requests skip the cache at
once; after a back-off one background lookup probes EMS (no request waits for it), and the
breaker closes when EMS answers, so the cache comes back by itself. A fetched block whose
checksum does not match, or that is gone by the time it is read, ends the usable prefix there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from services.common.circuit_breaker import BreakerState, CircuitBreaker
from services.common.grpc_server import insecure_channel
from services.ems.client import put_blocks
from services.prefill.metrics import PrefillMetrics
from supernode.cache.hashing import block_keys
from supernode.cache.payload import checksum
from supernode.config import CacheConfig
from supernode.hardware.spec import Link
from supernode.lifecycle.cache import keys_to_store, num_usable_blocks
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheHit:
    """What the cache gave one prompt: `num_cached_tokens` leading tokens, `num_bytes` true KV."""

    keys: tuple[bytes, ...]
    num_cached_blocks: int
    num_cached_tokens: int
    num_bytes: int


class PrefixCache(Protocol):
    """A prefill worker's prefix cache: the shared EMS, or a local one (kv-affinity)."""

    config: CacheConfig
    link: Link
    """The path fetched blocks take into the NPU; its name labels the link metrics."""

    async def fetch(self, namespace: str, token_ids: Sequence[int]) -> CacheHit:
        """The longest usable cached prefix of the prompt, verified; never raises."""
        ...

    def store_later(self, namespace: str, hit: CacheHit, num_prompt_tokens: int) -> None:
        """Store the prompt's uncached full blocks without delaying the request."""
        ...

    async def close(self) -> None: ...


class CacheBase:
    """What the shared-EMS client and a local cache have in common: hit accounting and
    background stores. Subclasses implement `fetch` and `_put`."""

    def __init__(self, config: CacheConfig, kv_bytes_per_token: int, payload_scale: float,
                 metrics: PrefillMetrics, link: Link) -> None:
        self.config = config
        self.link = link
        self.kv_bytes_per_block = config.block_size * kv_bytes_per_token
        self.payload_scale = payload_scale
        self.metrics = metrics
        self._pending: set[asyncio.Task[None]] = set()

    async def flush(self) -> None:
        """Wait until the pending stores have landed."""
        await asyncio.gather(*self._pending, return_exceptions=True)

    def store_later(self, namespace: str, hit: CacheHit, num_prompt_tokens: int) -> None:
        """Put the prompt's uncached full blocks in the background (never delays the request)."""
        new_keys = keys_to_store(hit.keys, hit.num_cached_blocks, num_prompt_tokens,
                                 self.config.block_size)
        if not new_keys:
            return
        task = asyncio.create_task(self._put(namespace, new_keys))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _put(self, namespace: str, keys: Sequence[bytes]) -> None:
        raise NotImplementedError

    def _hit(self, keys: tuple[bytes, ...], num_prompt_tokens: int, num_ok: int) -> CacheHit:
        """Count the lookup in the prefix-cache metrics and describe its `num_ok` leading hits."""
        m = self.metrics
        m.prefix_queries.labels(**m.labels).inc(num_prompt_tokens)
        m.prefix_hits.labels(**m.labels).inc(num_ok * self.config.block_size)
        return CacheHit(keys, num_ok, num_ok * self.config.block_size,
                        num_ok * self.kv_bytes_per_block)

    def _count_stored(self, num_blocks: int) -> None:
        m = self.metrics
        m.link_bytes.labels(**m.labels, plane=self.link.name, direction="out").inc(
            num_blocks * self.kv_bytes_per_block)


class PrefixCacheClient(CacheBase):
    """EMS client for one prefill worker; `link` is the hardware's `ems_ub` or `ems_vpc`.
    `now` is the wall clock the circuit breaker runs on (monotonic seconds)."""

    def __init__(self, address: str, config: CacheConfig, kv_bytes_per_token: int,
                 payload_scale: float, metrics: PrefillMetrics, link: Link,
                 cluster_token: str | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config, kv_bytes_per_token, payload_scale, metrics, link)
        self._channel = insecure_channel(address, cluster_token)
        self._stub = pb_grpc.EmsServiceStub(self._channel)
        self._metadata = (("x-supernode-plane", config.plane),)
        self.degraded = False
        self.now = now
        self.breaker = CircuitBreaker(config.breaker_failure_threshold, config.breaker_open_s,
                                      config.breaker_max_open_s, self._on_breaker)
        metrics.set_breaker_state(BreakerState.CLOSED.value)

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        await self._channel.close()

    async def fetch(self, namespace: str, token_ids: Sequence[int]) -> CacheHit:
        """Longest cached prefix of the prompt, fetched and verified; at least one token is left
        to compute (the last prompt token's logits are needed to sample). While the breaker is
        open: no hit, at once."""
        keys = tuple(block_keys(token_ids, self.config.block_size, namespace))
        if not self.breaker.allow(self.now()):
            self.metrics.cache_skipped.labels(**self.metrics.labels).inc()
            return CacheHit(keys, 0, 0, 0)
        if self.breaker.state is BreakerState.HALF_OPEN:  # this call holds the probe
            self._background(self._probe(namespace, keys[:1]))
            self.metrics.cache_skipped.labels(**self.metrics.labels).inc()
            return CacheHit(keys, 0, 0, 0)
        usable = num_usable_blocks(len(token_ids), self.config.block_size)
        try:
            num_hits = await self._lookup(namespace, keys[:usable]) if usable else 0
            num_ok = await self._get(namespace, keys[:num_hits]) if num_hits else 0
        except (TimeoutError, grpc.aio.AioRpcError) as e:
            self._degraded("lookup", e)
            return CacheHit(keys, 0, 0, 0)
        self._healthy()
        return self._hit(keys, len(token_ids), num_ok)

    def store_later(self, namespace: str, hit: CacheHit, num_prompt_tokens: int) -> None:
        """As CacheBase; nothing is sent while the breaker is not closed."""
        if self.breaker.state is BreakerState.CLOSED:
            super().store_later(namespace, hit, num_prompt_tokens)

    async def _probe(self, namespace: str, keys: Sequence[bytes]) -> None:
        """One lookup on behalf of the half-open breaker; its outcome closes or re-opens it."""
        try:
            await self._lookup(namespace, keys)
        except (TimeoutError, grpc.aio.AioRpcError) as e:
            self._degraded("probe", e)
            return
        self._healthy()

    def _background(self, call: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(call)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _on_breaker(self, old: BreakerState, new: BreakerState) -> None:
        m = self.metrics
        m.set_breaker_state(new.value)
        m.cache_breaker_transitions.labels(**m.labels, to=new.value).inc()
        if new is BreakerState.OPEN:
            log.warning("EMS circuit breaker open (%s): prefill skips the cache for %.1fs, then "
                        "probes", "probe failed" if old is BreakerState.HALF_OPEN else
                        f"{self.breaker.failure_threshold} failures in a row",
                        self.breaker.open_s)
        elif new is BreakerState.HALF_OPEN:
            log.info("EMS circuit breaker half-open: probing EMS")
        else:
            log.warning("EMS circuit breaker closed: EMS answers again")

    async def _lookup(self, namespace: str, keys: Sequence[bytes]) -> int:
        response = await self._stub.Lookup(
            pb.LookupRequest(namespace=namespace, block_keys=keys),
            timeout=self.config.lookup_timeout_s, metadata=self._metadata)
        return int(response.num_hit_blocks)

    async def _get(self, namespace: str, keys: Sequence[bytes]) -> int:
        """Number of leading blocks that arrived intact."""
        num_ok = 0
        call = self._stub.Get(pb.GetRequest(namespace=namespace, block_keys=keys),
                              timeout=self.config.lookup_timeout_s, metadata=self._metadata)
        async for block in call:
            intact = (block.found and block.key == keys[num_ok]
                      and checksum(block.payload) == block.crc32)
            if not intact:
                self.metrics.cache_rejected_blocks.labels(**self.metrics.labels).inc()
                call.cancel()
                break
            num_ok += 1
            if num_ok == len(keys):
                break
        return num_ok

    async def _put(self, namespace: str, keys: Sequence[bytes]) -> None:
        try:
            await put_blocks(self._stub, namespace, keys, self.config, self.kv_bytes_per_block,
                             self.payload_scale)
        except grpc.aio.AioRpcError as e:
            self._degraded("put", e)
            return
        self._healthy()
        self._count_stored(len(keys))

    def _degraded(self, op: str, error: Exception) -> None:
        m = self.metrics
        m.cache_errors.labels(**m.labels, op=op).inc()
        if not self.degraded:
            log.warning("EMS %s failed (%s); prefill continues without the cache", op,
                        getattr(error, "code", lambda: error)())
        m.cache_degraded.labels(**m.labels).set(1)
        self.degraded = True
        self.breaker.record_failure(self.now())

    def _healthy(self) -> None:
        m = self.metrics
        if self.degraded:
            log.info("EMS reachable again; prefix cache back in use")
        m.cache_degraded.labels(**m.labels).set(0)
        self.degraded = False
        self.breaker.record_success()

