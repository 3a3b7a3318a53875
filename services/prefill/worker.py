"""One prefill instance: the lifecycle's `PrefillInstance` on the modelled clock, then the KV
hand-off.

Per request: fetch the cached prefix from the prefix cache (the shared EMS over the `ems_ub` or
`ems_vpc` link, or under kv-affinity this instance's local cache on PCIe) -> wait in the FCFS
queue -> one packed batch priced by the instance model -> store new blocks in the cache in the
background -> send the KV to the chosen decode instance (modelled on RDMA) -> reply. Every stage
is anchored to the request's timeline (its `stage_age_s`), so the emulator's own delays are
absorbed while they are shorter than the modelled work.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from services.common.crash import stop_process_if_crashed
from services.prefill.cache_client import CacheHit, PrefixCache
from services.prefill.kv_sender import KvSender
from services.prefill.metrics import PrefillMetrics
from supernode.clock import Clock
from supernode.engine.prefill import PrefillJob
from supernode.lifecycle.prefill import Batch, Handoff, PrefillInstance
from supernode.perf import Deployment
from supernode.v1 import supernode_pb2 as pb

log = logging.getLogger(__name__)


class PrefillWorker:
    def __init__(self, instance: PrefillInstance, clock: Clock, metrics: PrefillMetrics,
                 sender: KvSender, cache: PrefixCache | None,
                 kv_transfer_timeout_s: float = 30.0, delivery_lead_s: float = 0.0,
                 arrival_grace_s: float = 0.0) -> None:
        """`delivery_lead_s`: wall seconds a request's last KV chunk (hence its reply) leaves
        ahead of the modelled transfer's end; decode and the scheduler hold it until then.
        `arrival_grace_s`: wall seconds a batch is packed after its modelled start, for
        requests that belong in it and are still on their way."""
        self.instance = instance
        self.engine = instance.engine
        self.own_deployment = instance.deployment
        """The instance's own hardware (faults price on slowed copies of it)."""
        self.clock = clock
        self.metrics = metrics
        self.sender = sender
        self.cache = cache
        self.kv_transfer_timeout_s = kv_transfer_timeout_s
        self._lead_s = clock.to_model_s(delivery_lead_s)
        self._grace_s = clock.to_model_s(arrival_grace_s)
        self._futures: dict[str, asyncio.Future[tuple[Batch, Handoff]]] = {}
        self._wake = asyncio.Event()
        self._looking_up: dict[int, float] = {}
        """The timeline arrival of each request whose real EMS lookup is in flight (keyed by
        call: a request id may come again, after a failover, while its first lookup runs)."""
        self._lookup_ids = itertools.count()
        self._looked_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def num_running(self) -> int:
        return self.instance.num_running

    @property
    def deployment(self) -> Deployment:
        """What the instance prices on now (see `use_hardware`)."""
        return self.instance.deployment

    def start(self) -> None:
        self._task = asyncio.create_task(self._batch_loop(), name="prefill-batches")
        self._task.add_done_callback(stop_process_if_crashed)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.cache:
            await self.cache.close()
        await self.sender.close()

    async def prefill(self, request: pb.PrefillRequest) -> pb.PrefillResponse:
        """Run one request through this instance; raises KvTransferError if decode refuses."""
        anchor = self.clock.now() - request.stage_age_s
        tokens = list(request.prompt_token_ids)
        hit = CacheHit((), 0, 0, 0)
        if self.cache is not None:  # the real lookup and read overlap the modelled fetch
            hit = await self._look_up(request, tokens, anchor)
        if hit.num_bytes:
            self._count_link(hit.num_bytes, 0.0, self.cache.link.name, "in")
        job = PrefillJob(request.request_id, len(tokens), hit.num_cached_tokens,
                         arrived_at=anchor, sends_kv=bool(request.decode_address))
        batch, handoff = await self._compute(job)
        m = self.metrics
        m.prompt_tokens.labels(**m.labels).inc(len(tokens))
        m.generation_tokens.labels(**m.labels).inc()  # the first token is sampled here
        if self.cache is not None:
            self.cache.store_later(request.cache_namespace, hit, len(tokens))
        if job.sends_kv:  # else the request ends at its first token: no KV handoff
            await self._hand_off(request, len(tokens), handoff)
        return pb.PrefillResponse(
            num_prompt_tokens=len(tokens), num_cached_tokens=hit.num_cached_tokens,
            queue_s=batch.queue_s(job), compute_s=batch.compute_s, cache_fetch_s=batch.fetch_s,
            transfer_s=handoff.transfer_s, kv_num_bytes=handoff.kv_num_bytes)

    async def _look_up(self, request: pb.PrefillRequest, tokens: list[int],
                       arrived_at: float) -> CacheHit:
        """The real EMS lookup and read. While it runs, a batch its timeline belongs in
        waits for it (`_batch_loop`): the lookup's wall time is the emulator's, not the
        model's, whose fetch is priced in the batch."""
        key = next(self._lookup_ids)
        self._looking_up[key] = arrived_at
        try:
            return await self.cache.fetch(request.cache_namespace, tokens)
        finally:
            del self._looking_up[key]
            self._looked_up.set()

    async def _lookups_before(self, begin: float) -> None:
        """Until no lookup is in flight for a request that arrived by model time `begin`
        (each lookup is bounded by the cache client's own timeouts)."""
        while any(at <= begin for at in self._looking_up.values()):
            self._looked_up.clear()
            await self._looked_up.wait()

    async def _hand_off(self, request: pb.PrefillRequest, num_tokens: int,
                        handoff: Handoff) -> None:
        """Send the KV; its last chunk leaves at the modelled transfer's end."""
        m = self.metrics
        self._count_link(handoff.kv_num_bytes, handoff.transfer_s, "rdma", "out")
        m.kv_transfer_seconds.labels(**m.labels).observe(handoff.transfer_s)

        async def ready() -> float:
            await self.clock.sleep_until(handoff.ready_at - self._lead_s)
            return self.clock.now() - handoff.ready_at

        timeout_s = self.kv_transfer_timeout_s + self.clock.to_wall_s(handoff.transfer_s)
        await self.sender.send(request.decode_address, request.request_id, num_tokens,
                               handoff.kv_num_bytes, timeout_s, ready=ready)

    def use_hardware(self, deployment: Deployment) -> None:
        """Price the next batches, cache reads and transfers on `deployment`: the instance's
        own, or a copy with slowed links while an injected fault lasts
        (services.common.faults)."""
        self.instance.use_hardware(deployment)

    def use_instance(self, instance: PrefillInstance) -> None:
        """Become `instance` (another model's, after a switch); only while idle."""
        if self.instance.batch is not None or self.engine.waiting:
            raise RuntimeError("a prefill instance changes models only while idle")
        self.instance, self.engine = instance, instance.engine
        self.own_deployment = instance.deployment

    def abort(self, request_id: str) -> bool:
        future = self._futures.pop(request_id, None)
        found = self.instance.abort(request_id)
        if future is not None and not future.done():
            future.cancel()
        self._publish_gauges()
        return found

    def _count_link(self, num_bytes: int, seconds: float, plane: str, direction: str) -> None:
        m = self.metrics
        m.link_bytes.labels(**m.labels, plane=plane, direction=direction).inc(num_bytes)
        m.link_seconds.labels(**m.labels, plane=plane).inc(seconds)

    async def _compute(self, job: PrefillJob) -> tuple[Batch, Handoff]:
        future: asyncio.Future[tuple[Batch, Handoff]] = \
            asyncio.get_running_loop().create_future()
        self._futures[job.request_id] = future
        self.instance.add(job)
        self._publish_gauges()
        self._wake.set()
        try:
            return await future
        finally:
            self._futures.pop(job.request_id, None)
            if self.instance.abort(job.request_id):  # cancelled while still queued
                self._publish_gauges()

    async def _batch_loop(self) -> None:
        while True:
            begin = self.instance.next_begin()
            if begin is None:
                self._wake.clear()
                self._publish_gauges()
                await self._wake.wait()
                continue
            # A request whose timeline puts it before `begin` may still be on its way (the
            # scheduler's and the RPC's own time, or its real EMS lookup): pack a little
            # later in wall time, and after those lookups; the batch's modelled start stays
            # `begin`.
            await self.clock.sleep_until(begin + self._grace_s)
            await self._lookups_before(begin)
            batch = self.instance.start_batch(self.clock.now())
            if batch is None:
                continue  # its jobs were aborted meanwhile
            self._publish_gauges()
            self._record_batch(batch)
            await self.clock.sleep_until(batch.done_at)
            self.instance.finish_batch()
            m = self.metrics
            for job, handoff in zip(batch.jobs, batch.handoffs):
                future = self._futures.get(job.request_id)
                if future is not None and not future.done():
                    future.set_result((batch, handoff))
                    m.queue_time.labels(**m.labels).observe(batch.queue_s(job))
                    m.prefill_time.labels(**m.labels).observe(batch.timing.total_s)

    def _record_batch(self, batch: Batch) -> None:
        m, labels = self.metrics, self.metrics.labels
        m.hw.on_step(batch.timing)
        if batch.fetch_s and self.cache is not None:
            m.link_seconds.labels(**labels, plane=self.cache.link.name).inc(batch.fetch_s)
        num_new = sum(j.num_new_tokens for j in batch.jobs)
        m.iteration_tokens.labels(**labels).observe(num_new)
        m.set_usage(min(1.0, num_new / self.engine.max_num_batched_tokens))

    def _publish_gauges(self) -> None:
        self.metrics.set_queues(self.instance.num_running, self.engine.num_waiting)
