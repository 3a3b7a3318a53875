"""EMS's model cache: is-cached, prefetch from OBS, and instance loads, paced on EMS's clock.

Contract (supernode.v1.EmsService, the model RPCs; a model image is what one kind of instance
loads, see `supernode.cache.models`):

- ModelStatus(image): whether every block is cached, how many leading blocks are, and whether
  a prefetch is in flight.
- PrefetchModel(image): starts one background OBS -> EMS fetch per image (a second call while
  it runs, or for a cached image, starts nothing); FAILED_PRECONDITION when model caching is
  off or the image is larger than the pool.
- LoadModel(request): the source is EMS when every block is cached (unless `exclude_ems`), else
  the instance's DRAM when `local_dram`, else OBS (`supernode.lifecycle.model_tiers.load_source`,
  the simulator's rule too); a load of an image being prefetched waits for the prefetch first. The stream is one plan, then (from EMS) the
  blocks as the modelled read passes them (leased while read), then done once the load's
  modelled time is over; a block gone mid-read ends the call with ABORTED (retry without EMS).
- Pacing: loads and prefetches through the same source share it max-min fairly
  (`SharedResource`: the OBS bucket, the EMS pool's host side per plane; a node's DRAM is the
  instance's own), re-planned whenever one starts or ends, on EMS's clock (model seconds at the
  config's speedup). A load's time is its stream plus the source's latency and the pipelined
  copy's tail (`supernode.perf.load`).
- Warming: a prefetch, and a load not served by EMS, put the image's blocks into EMS as the
  modelled read passes them, when caching is on and the image fits the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from services.common.shape import deployment_from_shape
from services.ems.metrics import EmsMetrics
from supernode.cache.models import ModelCatalog, ModelManifest, manifest_for
from supernode.cache.pacing import SharedResource
from supernode.cache.store import StoredBlock, StoreUnavailable
from supernode.clock import Clock
from supernode.config import ClusterConfig
from supernode.hardware.storage import load_storage
from supernode.lifecycle.model_tiers import load_source
from supernode.perf import Deployment
from supernode.perf.load import MODEL_BLOCK_BYTES, LoadPlan, load_plan, prefetch_plan
from supernode.v1 import supernode_pb2 as pb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCacheSettings:
    """What EMS needs from the deployment's config to cache and load models."""

    payload_scale: float = 1e-3
    block_bytes: int = MODEL_BLOCK_BYTES
    cache_in_ems: bool = True

    @classmethod
    def from_config(cls, config: ClusterConfig) -> ModelCacheSettings:
        return cls(config.kv_payload_scale, config.model_load.block_bytes,
                   config.model_load.cache_in_ems)


class BadImage(ValueError):
    """A request names an image EMS cannot build (unknown profile, bad shape or version)."""


class ModelService:
    """The model RPCs over one `ModelCatalog`, paced on `clock`."""

    def __init__(self, catalog: ModelCatalog, metrics: EmsMetrics, clock: Clock,
                 settings: ModelCacheSettings) -> None:
        self.catalog = catalog
        self.metrics = metrics
        self.clock = clock
        self.settings = settings
        self._resources: dict[str, SharedResource] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._prefetches: dict[str, asyncio.Task[None]] = {}
        self._warned: set[str] = set()
        self._ids = iter(range(1, 2**63))

    def image(self, request: pb.ModelImageRequest | pb.LoadModelRequest
              ) -> tuple[Deployment, ModelManifest]:
        """The deployment and manifest a request names; BadImage if it names none."""
        try:
            d = deployment_from_shape(request.shape)
            return d, manifest_for(d, request.version, self.settings.block_bytes)
        except (ValueError, KeyError) as e:
            raise BadImage(str(e)) from e

    async def status(self, request: pb.ModelImageRequest) -> pb.ModelStatusResponse:
        _, manifest = self.image(request)
        num_cached = await self.catalog.num_cached_blocks(manifest)
        return pb.ModelStatusResponse(
            model_key=manifest.model_key, cached=num_cached == manifest.num_blocks,
            num_blocks=manifest.num_blocks, num_cached_blocks=num_cached,
            model_bytes=manifest.model_bytes, prefetching=manifest.model_key in self._prefetches)

    async def prefetch(self, request: pb.ModelImageRequest, context: grpc.aio.ServicerContext
                       ) -> pb.PrefetchModelResponse:
        d, manifest = self.image(request)
        key = manifest.model_key
        if await self.catalog.is_cached(manifest):
            return pb.PrefetchModelResponse(model_key=key, already_cached=True)
        if key in self._prefetches:
            return pb.PrefetchModelResponse(model_key=key, estimated_s=self._eta("obs_bucket", key))
        if reason := await self._cannot_cache(manifest):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, reason)
        estimated_s = await self._start_prefetch(d, manifest)
        return pb.PrefetchModelResponse(model_key=key, started=True, estimated_s=estimated_s)

    async def prefetch_all(self, deployments: list[Deployment], version: str) -> None:
        """Start fetching the images of `deployments` from OBS (`model_load.prefetch`)."""
        for d in deployments:
            manifest = manifest_for(d, version, self.settings.block_bytes)
            key = manifest.model_key
            if key in self._prefetches or await self.catalog.is_cached(manifest):
                continue
            if reason := await self._cannot_cache(manifest):
                log.warning("not prefetching %s: %s", key, reason)
                continue
            log.info("prefetching %s from OBS: %.1f model s", key,
                     await self._start_prefetch(d, manifest))

    async def _start_prefetch(self, d: Deployment, manifest: ModelManifest) -> float:
        """Begin the background fetch; model seconds to its end at the bucket's sharing."""
        key = manifest.model_key
        await self.catalog.record(manifest)
        plan = prefetch_plan(d, load_storage(d.hardware.name))
        resource = self._start(key, plan, self.clock.now())
        task = asyncio.create_task(self._prefetch(resource, key, plan, manifest))
        self._prefetches[key] = task
        task.add_done_callback(lambda _: self._prefetches.pop(key, None))
        self.metrics.model_prefetches.labels("started").inc()
        return self._eta(resource.name, key)

    async def load(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[pb.ModelLoadEvent]:
        d, manifest = self.image(request)
        source = await self._choose_source(request, manifest)
        plan = load_plan(d, source, load_storage(d.hardware.name), request.plane or "ub",
                         self.settings.block_bytes)
        warm = source != "ems" and await self._start_warming(manifest)
        num_blocks = manifest.num_blocks if source == "ems" or warm else 0
        stream_id = f"load-{request.worker_id}-{next(self._ids)}"
        blocks = self.catalog.read(manifest) if source == "ems" else None
        started = self.clock.now()
        resource = self._start(stream_id, plan, started)
        in_flight = self.metrics.model_loads_in_flight.labels(source)
        in_flight.inc()
        log.info("%s: %s from %s (%d loads share %s)", stream_id, manifest.model_key, source,
                 resource.num_active, resource.name)
        try:
            yield pb.ModelLoadEvent(plan=pb.ModelLoadPlan(
                source=source, model_key=manifest.model_key, model_bytes=manifest.model_bytes,
                bytes_per_device=round(plan.image.bytes_per_device),
                estimated_s=self._eta(resource.name, stream_id) + plan.latency_s + plan.tail_s,
                num_blocks=num_blocks if blocks is not None else 0,
                num_sharing=resource.num_active))
            async for index in self._paced(resource, stream_id, plan, num_blocks):
                if blocks is not None:
                    yield await self._read_block(blocks, manifest, index, context)
                elif warm:
                    warm = await self._warm(manifest, index)
            stream_s = (resource.finished_at_s(stream_id) or self.clock.now()) - started
        finally:
            in_flight.dec()
            self._finish(resource, stream_id)
            if blocks is not None:
                await blocks.aclose()
        # Anchored to the modelled end of the stream: time the emulator itself took is lag.
        load_s = stream_s + plan.latency_s + plan.tail_s
        await self.clock.sleep_until(started + load_s)
        self.metrics.model_loads.labels(source).inc()
        self.metrics.model_load_seconds.labels(source).observe(load_s)
        yield pb.ModelLoadEvent(done=pb.ModelLoadDone(
            load_s=load_s, lag_s=max(0.0, self.clock.now() - started - load_s), breakdown={
                "latency": plan.latency_s, plan.part: stream_s,
                "host_to_device_tail": plan.tail_s}))

    async def seed(self, deployments: list[Deployment], version: str) -> None:
        """Store the images of `deployments` at once: the pool is warm when the run starts."""
        for d in deployments:
            manifest = manifest_for(d, version, self.settings.block_bytes)
            if reason := await self._cannot_cache(manifest):
                log.warning("not seeding %s: %s", manifest.model_key, reason)
                continue
            await self.catalog.record(manifest)
            for start in range(0, manifest.num_blocks, 64):
                await self._store(manifest, start, min(manifest.num_blocks, start + 64))
            log.info("seeded %s (%d blocks) in EMS", manifest.model_key, manifest.num_blocks)

    async def close(self) -> None:
        for task in list(self._prefetches.values()):
            task.cancel()
        await asyncio.gather(*self._prefetches.values(), return_exceptions=True)

    # ---- sources and pacing
    async def _choose_source(self, request: pb.LoadModelRequest, manifest: ModelManifest) -> str:
        prefetch = self._prefetches.get(manifest.model_key)
        if prefetch is not None and not request.exclude_ems:
            await asyncio.wait({prefetch})  # it fills EMS: read it from there once it has
        in_ems = not request.exclude_ems and await self.catalog.is_cached(manifest)
        return load_source(in_ems, request.local_dram)

    def _start(self, stream_id: str, plan: LoadPlan, now_s: float) -> SharedResource:
        """Add a stream for `plan` to its resource (created on first use) at `now_s` and wake
        the others."""
        name = plan.resource
        if name not in self._resources:
            self._resources[name] = SharedResource(name, plan.resource_bytes_per_s)
            self._changed[name] = asyncio.Event()
        resource = self._resources[name]
        resource.add(stream_id, plan.stream_bytes, plan.cap_bytes_per_s, now_s)
        self._wake(name)
        return resource

    def _finish(self, resource: SharedResource, stream_id: str) -> None:
        """Take the stream off its resource (done or abandoned); the others speed up."""
        resource.remove(stream_id, self.clock.now())
        self._wake(resource.name)

    def _wake(self, name: str) -> None:
        self._changed[name].set()
        self._changed[name] = asyncio.Event()

    def _eta(self, name: str, stream_id: str) -> float:
        """Model seconds until the stream ends if nothing else starts."""
        resource = self._resources[name]
        resource.advance(self.clock.now())
        return resource.eta_s(stream_id, math.inf) - self.clock.now()

    async def _paced(self, resource: SharedResource, stream_id: str, plan: LoadPlan,
                     num_blocks: int) -> AsyncIterator[int]:
        """Yield block indices as the stream passes each block's end; return when it ends.
        Waits wake early when a stream joins or leaves the resource (the shares change)."""
        due = 0
        while True:
            now = self.clock.now()
            resource.advance(now)
            finished = resource.finished(stream_id)
            passed = num_blocks if finished else math.floor(
                resource.done_bytes(stream_id) / plan.stream_bytes * num_blocks)
            while due < passed:
                yield due
                due += 1
            if finished:
                return
            target = plan.stream_bytes * (due + 1) / num_blocks if num_blocks else math.inf
            changed = self._changed[resource.name]
            wait_s = self.clock.to_wall_s(resource.eta_s(stream_id, target) - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=max(0.0, wait_s))

    async def _prefetch(self, resource: SharedResource, key: str, plan: LoadPlan,
                        manifest: ModelManifest) -> None:
        warming = True
        try:
            async for index in self._paced(resource, key, plan, manifest.num_blocks):
                warming = warming and await self._warm(manifest, index)
        finally:
            self._finish(resource, key)
        await self.clock.sleep(plan.latency_s)
        self.metrics.model_prefetches.labels("done" if warming else "failed").inc()
        log.info("prefetch of %s %s", key, "done" if warming else "failed (EMS backend)")

    # ---- blocks
    async def _read_block(self, blocks: AsyncIterator[StoredBlock | None],
                          manifest: ModelManifest, index: int,
                          context: grpc.aio.ServicerContext) -> pb.ModelLoadEvent:
        block = await anext(blocks, None)
        if block is None:
            await context.abort(grpc.StatusCode.ABORTED,
                                f"block {index} of {manifest.model_key} left EMS during the "
                                "load; load again without EMS")
        self.metrics.model_read_bytes.inc(block.true_num_bytes)
        return pb.ModelLoadEvent(block=pb.KvBlock(
            namespace=manifest.model_key, key=block.key, payload=block.payload,
            crc32=block.crc32, true_num_bytes=block.true_num_bytes, found=True))

    async def _start_warming(self, manifest: ModelManifest) -> bool:
        """Whether a load not from EMS may store the image in EMS (manifest recorded if so)."""
        if await self._cannot_cache(manifest):
            return False
        try:
            await self.catalog.record(manifest)
        except StoreUnavailable as e:
            log.warning("not caching %s in EMS: %s", manifest.model_key, e)
            return False
        return True

    async def _warm(self, manifest: ModelManifest, index: int) -> bool:
        """Store block `index`; False (logged) when the backend fails: stop warming, the load
        itself goes on."""
        try:
            await self._store(manifest, index, index + 1)
        except StoreUnavailable as e:
            log.warning("caching %s in EMS stopped: %s", manifest.model_key, e)
            return False
        return True

    async def _store(self, manifest: ModelManifest, start: int, stop: int) -> None:
        result = await self.catalog.store_blocks(manifest, start, stop)
        self.metrics.model_written_bytes.inc(
            sum(manifest.block_true_bytes(i) for i in range(start, stop)))
        self.metrics.evictions.inc(result.num_evicted)

    async def _cannot_cache(self, manifest: ModelManifest) -> str:
        """Why the image cannot go into EMS ("" when it can)."""
        if not self.settings.cache_in_ems:
            return "model caching in EMS is off (model_load.cache_in_ems)"
        capacity = (await self.catalog.store.stats()).capacity_bytes
        if manifest.model_bytes <= capacity:
            return ""
        reason = (f"{manifest.model_key} ({manifest.model_bytes / 1e9:.1f} GB) exceeds the EMS "
                  f"pool ({capacity / 1e9:.1f} GB, cache.capacity_bytes)")
        if manifest.model_key not in self._warned:
            self._warned.add(manifest.model_key)
            log.warning("cannot cache %s", reason)
            self.metrics.model_too_large.inc()
        return reason

