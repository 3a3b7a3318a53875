"""EMS gRPC servicer: the prefix-cache pool's RPCs over a `BlockStore`.

Contract (supernode.v1.EmsService):
- Lookup(namespace, keys) -> leading hits, stopping at the first miss.
- Get(namespace, keys) streams one KvBlock per leading present key (found=True, payload and
  crc32 as stored), then, if a key is missing, one KvBlock with found=False for it and ends: the
  blocks after a miss are useless to the reader. The blocks are leased while streaming, so they
  are not evicted mid-read.
- Put (client stream) verifies each block's crc32 against its payload; mismatched or malformed
  blocks (empty namespace or key, true_num_bytes 0) are rejected and counted, never stored. The
  rest of the stream is stored in one store call per namespace when the stream ends (so the
  stream's own blocks never evict each other; the stream's payloads are held until then).
- Stats(namespace or "" for the pool): KV blocks by namespace; the pool counts both kinds.
- ModelStatus, PrefetchModel, LoadModel: the model cache (services.ems.models); a request
  naming an image EMS cannot build ends with INVALID_ARGUMENT.
- Gauges of the pool's occupancy change only in `refresh_gauges` (the process calls it
  periodically); counters change as the RPCs run.
- Readers and writers name their plane in metadata `x-supernode-plane` ("ub" default, "vpc").
- If the backend fails the RPC ends with UNAVAILABLE ("EMS backend ... unavailable: ..."), a
  counter and `supernode_ems_backend_up` say so, and the next call that succeeds recovers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import NoReturn, TypeVar

import grpc
from prometheus_client import CollectorRegistry

from services.ems.metrics import PLANES, EmsMetrics
from services.ems.models import BadImage, ModelCacheSettings, ModelService
from supernode.cache.backends import StoreConfig, make_store
from supernode.cache.models import ModelCatalog
from supernode.cache.payload import checksum
from supernode.cache.redis_store import DEFAULT_KEY_PREFIX
from supernode.cache.store import (
    BLOCK_KINDS,
    DEFAULT_LEASE_S,
    BlockStore,
    PutResult,
    StoredBlock,
    StoreUnavailable,
)
from supernode.clock import Clock, WallClock
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

PLANE_METADATA_KEY = "x-supernode-plane"
DEFAULT_PLANE = "ub"

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class EmsServicer(pb_grpc.EmsServiceServicer):
    """Serves one BlockStore (owned: `close` closes it) and records `metrics`."""

    def __init__(self, store: BlockStore, metrics: EmsMetrics,
                 models: ModelService | None = None) -> None:
        """`models` defaults to a model cache on the wall clock at speedup 1."""
        self._store = store
        self._metrics = metrics
        self._backend_up = True
        self.models = models or ModelService(ModelCatalog(store, ModelCacheSettings.payload_scale),
                                             metrics, WallClock(), ModelCacheSettings())

    @property
    def backend_available(self) -> bool:
        """False since a backend call failed, until one succeeds (for the health service)."""
        return self._backend_up

    async def Lookup(self, request: pb.LookupRequest, context: grpc.aio.ServicerContext):
        namespace = await _namespace(request.namespace, context)
        keys = list(request.block_keys)
        num_hits = await self._call("Lookup", self._store.lookup(namespace, keys), context)
        self._metrics.count_lookup(namespace, len(keys), num_hits)
        return pb.LookupResponse(num_hit_blocks=num_hits)

    async def Get(
        self, request: pb.GetRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.KvBlock]:
        plane = await _plane(context)
        namespace = await _namespace(request.namespace, context)
        keys = list(request.block_keys)
        try:
            async with contextlib.aclosing(self._store.get(namespace, keys)) as blocks:
                index = 0
                async for block in blocks:
                    if block is None:
                        self._metrics.missed_blocks.inc()
                        yield pb.KvBlock(namespace=namespace, key=keys[index], found=False)
                        break
                    self._count_read(plane, block)
                    yield _to_message(namespace, block)
                    index += 1
        except StoreUnavailable as exc:
            await self._abort_unavailable("Get", exc, context)
        self._mark_up()

    async def Put(
        self, request_iterator: AsyncIterator[pb.KvBlock], context: grpc.aio.ServicerContext
    ) -> pb.PutResponse:
        plane = await _plane(context)
        by_namespace: dict[str, list[StoredBlock]] = {}
        num_bad = 0
        async for message in request_iterator:
            block = self._verified(message)
            if block is None:
                num_bad += 1
                continue
            by_namespace.setdefault(message.namespace, []).append(block)
            self._metrics.written_bytes.labels(plane).inc(block.true_num_bytes)
            self._metrics.written_payload_bytes.labels(plane).inc(len(block.payload))
        result = PutResult()
        for namespace, blocks in by_namespace.items():
            result += await self._call("Put", self._store.put(namespace, blocks), context)
        self._count_put(result)
        return pb.PutResponse(
            num_stored=result.num_stored,
            num_deduplicated=result.num_deduplicated,
            num_rejected=result.num_rejected + num_bad,
        )

    async def Stats(self, request: pb.StatsRequest, context: grpc.aio.ServicerContext):
        stats = await self._call("Stats", self._store.stats(request.namespace or None), context)
        return pb.StatsResponse(
            num_blocks=stats.num_blocks,
            used_bytes=stats.used_bytes,
            capacity_bytes=stats.capacity_bytes,
            num_lookups=stats.num_lookups,
            num_hit_blocks=stats.num_hit_blocks,
            num_queried_blocks=stats.num_queried_blocks,
            num_evictions=stats.num_evictions,
            backend=stats.backend,
        )

    async def ModelStatus(self, request: pb.ModelImageRequest,
                          context: grpc.aio.ServicerContext) -> pb.ModelStatusResponse:
        return await self._model_call("ModelStatus", self.models.status(request), context)

    async def PrefetchModel(self, request: pb.ModelImageRequest,
                            context: grpc.aio.ServicerContext) -> pb.PrefetchModelResponse:
        return await self._model_call("PrefetchModel", self.models.prefetch(request, context),
                                      context)

    async def LoadModel(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[pb.ModelLoadEvent]:
        try:
            async with contextlib.aclosing(self.models.load(request, context)) as events:
                async for event in events:
                    yield event
        except BadImage as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except StoreUnavailable as exc:
            await self._abort_unavailable("LoadModel", exc, context)
        self._mark_up()

    async def refresh_gauges(self) -> None:
        """Mirror the pool's occupancy into the gauges (the RPCs do not: call this periodically).

        A backend failure is counted and marks the backend down; it is not raised.
        """
        try:
            pool = await self._store.stats()
            used = await self._store.used_bytes_by_namespace()
            kinds = {kind: await self._store.stats(kind=kind) for kind in BLOCK_KINDS}
        except StoreUnavailable as exc:
            self._mark_down("refresh", exc)
            return
        self._mark_up()
        m = self._metrics
        m.blocks.set(pool.num_blocks)
        m.payload_bytes.set(pool.payload_bytes)
        m.capacity_bytes.set(pool.capacity_bytes)
        m.namespace_capacity_bytes.set(pool.namespace_capacity_bytes)
        m.hit_ratio.set(pool.hit_ratio or 0.0)
        m.set_used_bytes(used)
        for kind, stats in kinds.items():
            m.set_kind_stats(kind, stats)

    async def close(self) -> None:
        """Stop the model cache's prefetches and close the store (its connections)."""
        await self.models.close()
        await self._store.close()

    async def _call(
        self, rpc: str, awaitable: Awaitable[_T], context: grpc.aio.ServicerContext
    ) -> _T:
        try:
            result = await awaitable
        except StoreUnavailable as exc:
            await self._abort_unavailable(rpc, exc, context)
        self._mark_up()
        return result

    async def _model_call(
        self, rpc: str, awaitable: Awaitable[_T], context: grpc.aio.ServicerContext
    ) -> _T:
        try:
            return await self._call(rpc, awaitable, context)
        except BadImage as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("context.abort returned") from exc  # pragma: no cover

    async def _abort_unavailable(
        self, rpc: str, exc: StoreUnavailable, context: grpc.aio.ServicerContext
    ) -> NoReturn:
        self._mark_down(rpc, exc)
        await context.abort(
            grpc.StatusCode.UNAVAILABLE, f"EMS backend {self._store.backend} unavailable: {exc}"
        )
        raise AssertionError("context.abort returned")  # pragma: no cover

    def _mark_down(self, rpc: str, exc: StoreUnavailable) -> None:
        self._metrics.backend_errors.labels(rpc).inc()
        self._metrics.backend_up.set(0)
        if self._backend_up:
            _log.warning("EMS backend %s unavailable (%s): %s", self._store.backend, rpc, exc)
        self._backend_up = False

    def _mark_up(self) -> None:
        if not self._backend_up:
            _log.info("EMS backend %s available again", self._store.backend)
        self._backend_up = True
        self._metrics.backend_up.set(1)

    def _verified(self, message: pb.KvBlock) -> StoredBlock | None:
        """The message as a StoredBlock, or None (counted) if malformed or corrupted."""
        if checksum(message.payload) != message.crc32:
            self._metrics.checksum_rejections.inc()
            self._metrics.put_blocks.labels("bad_checksum").inc()
            return None
        try:
            if not message.namespace:
                raise ValueError("empty namespace")
            return StoredBlock(
                message.key,
                message.payload,
                message.crc32,
                message.true_num_bytes,
                message.num_tokens,
            )
        except ValueError:
            self._metrics.put_blocks.labels("invalid").inc()
            return None

    def _count_read(self, plane: str, block: StoredBlock) -> None:
        m = self._metrics
        m.read_blocks.labels(plane).inc()
        m.read_tokens.labels(plane).inc(block.num_tokens)
        m.read_bytes.labels(plane).inc(block.true_num_bytes)
        m.read_payload_bytes.labels(plane).inc(len(block.payload))

    def _count_put(self, result: PutResult) -> None:
        m = self._metrics
        m.put_blocks.labels("stored").inc(result.num_stored)
        m.put_blocks.labels("deduplicated").inc(result.num_deduplicated)
        m.put_blocks.labels("over_capacity").inc(result.num_rejected)
        m.evictions.inc(result.num_evicted)


def build_servicer(
    *,
    backend: str,
    capacity_bytes: int,
    registry: CollectorRegistry,
    namespace_capacity_bytes: int | None = None,
    redis_url: str | None = None,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    lease_s: float = DEFAULT_LEASE_S,
    models: ModelCacheSettings | None = None,
    clock: Clock | None = None,
) -> EmsServicer:
    """An EmsServicer over a new store (see `StoreConfig` for the arguments), metrics on `registry`;
    its model cache uses `models` (default settings if None) and paces on `clock` (default:
    wall clock, speedup 1).

    Raises ValueError on a bad configuration. Connects lazily: no I/O here.
    """
    config = StoreConfig(
        backend=backend,
        capacity_bytes=capacity_bytes,
        namespace_capacity_bytes=namespace_capacity_bytes,
        redis_url=redis_url,
        key_prefix=key_prefix,
        lease_s=lease_s,
    )
    store, metrics = make_store(config), EmsMetrics(registry)
    models = models or ModelCacheSettings()
    service = ModelService(ModelCatalog(store, models.payload_scale), metrics,
                           clock or WallClock(), models)
    return EmsServicer(store, metrics, service)


def _to_message(namespace: str, block: StoredBlock) -> pb.KvBlock:
    return pb.KvBlock(
        namespace=namespace,
        key=block.key,
        payload=block.payload,
        crc32=block.crc32,
        true_num_bytes=block.true_num_bytes,
        num_tokens=block.num_tokens,
        found=True,
    )


async def _namespace(namespace: str, context: grpc.aio.ServicerContext) -> str:
    if not namespace:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "namespace must not be empty")
    return namespace


async def _plane(context: grpc.aio.ServicerContext) -> str:
    """The plane named in the call's metadata (default "ub"); INVALID_ARGUMENT if unknown."""
    plane = DEFAULT_PLANE
    for key, value in context.invocation_metadata() or ():
        if key == PLANE_METADATA_KEY:
            plane = value
    if plane not in PLANES:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{PLANE_METADATA_KEY} must be one of {', '.join(PLANES)}, got {plane!r}",
        )
    return plane
