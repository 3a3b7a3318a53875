"""One prefill instance: token-budget batches on the modelled clock, then the KV handoff.

Per request: fetch the cached prefix from the prefix cache (the shared EMS, modelled on the
hardware's `ems_ub` or `ems_vpc` link; or, under kv-affinity, this instance's local cache on
PCIe) -> wait in the FCFS queue -> one packed batch priced by `supernode.perf.prefill_time` ->
store new blocks in the cache in the background -> send the KV to the chosen decode instance
(modelled on RDMA) -> reply.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from services.common.crash import stop_process_if_crashed
from services.prefill.cache_client import CacheHit, PrefixCache
from services.prefill.kv_sender import KvSender
from services.prefill.metrics import PrefillMetrics
from supernode.clock import Clock
from supernode.engine.prefill import PrefillEngine, PrefillJob
from supernode.hardware.spec import Link
from supernode.perf import Deployment, PrefillBatch, prefill_time, transfer_time
from supernode.tokenizer import sample_token
from supernode.v1 import supernode_pb2 as pb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    queue_s: float
    compute_s: float


class PrefillWorker:
    def __init__(self, engine: PrefillEngine, deployment: Deployment, clock: Clock,
                 metrics: PrefillMetrics, sender: KvSender,
                 cache: PrefixCache | None, kv_transfer_timeout_s: float = 30.0) -> None:
        self.engine = engine
        self.deployment = deployment
        self.clock = clock
        self.metrics = metrics
        self.sender = sender
        self.cache = cache
        self.kv_transfer_timeout_s = kv_transfer_timeout_s
        self.kv_bytes_per_token = deployment.model.kv_bytes_per_token(deployment.kv_dtype)
        self._futures: dict[str, tuple[float, asyncio.Future[BatchResult]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.num_running = 0

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
        m = self.metrics
        tokens = list(request.prompt_token_ids)
        hit = CacheHit((), 0, 0, 0)
        fetch_s = 0.0
        if self.cache is not None:
            started = self.clock.now()  # the real lookup and read overlap the modelled time
            hit = await self.cache.fetch(request.cache_namespace, tokens)
            if hit.num_bytes:
                fetch_s = self._move(hit.num_bytes, self.cache.link, "in")
                await self.clock.sleep_until(started + fetch_s)
        result = await self._compute(PrefillJob(request.request_id, len(tokens),
                                                hit.num_cached_tokens))
        m.prompt_tokens.labels(**m.labels).inc(len(tokens))
        m.generation_tokens.labels(**m.labels).inc()  # the first token is sampled here
        if self.cache is not None:
            self.cache.store_later(request.cache_namespace, hit, len(tokens))
        kv_bytes, transfer_s = 0, 0.0
        if request.decode_address:  # else the request ends at its first token: no KV handoff
            kv_bytes = len(tokens) * self.kv_bytes_per_token
            transfer_s = self._move(kv_bytes, self.deployment.hardware.link("rdma"), "out")
            m.kv_transfer_seconds.labels(**m.labels).observe(transfer_s)
            deadline = self.clock.now() + transfer_s
            await self.sender.send(request.decode_address, request.request_id, len(tokens),
                                   kv_bytes,
                                   self.kv_transfer_timeout_s + self.clock.to_wall_s(transfer_s),
                                   not_before=lambda: self.clock.sleep_until(deadline))
        first_token = sample_token(random.Random(f"{request.seed}:0"),
                                   self.deployment.model.vocab_size)
        return pb.PrefillResponse(
            num_prompt_tokens=len(tokens), num_cached_tokens=hit.num_cached_tokens,
            first_token_id=first_token, queue_s=result.queue_s, compute_s=result.compute_s,
            cache_fetch_s=fetch_s, transfer_s=transfer_s, kv_num_bytes=kv_bytes)

    def use_hardware(self, deployment: Deployment) -> None:
        """Price the next batches and transfers on `deployment`: the instance's own, or a copy
        with slowed links while an injected fault lasts (services.common.faults)."""
        self.deployment = deployment
        if self.cache is not None and self.cache.link.name in deployment.hardware.links:
            self.cache.link = deployment.hardware.link(self.cache.link.name)

    def abort(self, request_id: str) -> bool:
        entry = self._futures.pop(request_id, None)
        found = self.engine.abort(request_id)
        if entry is not None and not entry[1].done():
            entry[1].cancel()
        self._publish_gauges()
        return found

    def _move(self, num_bytes: int, link: Link, direction: str) -> float:
        """Model seconds to move `num_bytes` on `link`; counted in the link metrics."""
        seconds = transfer_time(num_bytes, link).total_s
        m = self.metrics
        m.link_bytes.labels(**m.labels, plane=link.name, direction=direction).inc(num_bytes)
        m.link_seconds.labels(**m.labels, plane=link.name).inc(seconds)
        return seconds

    async def _compute(self, job: PrefillJob) -> BatchResult:
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._futures[job.request_id] = (self.clock.now(), future)
        self.engine.add(job)
        self._publish_gauges()
        self._wake.set()
        try:
            return await future
        finally:
            self._futures.pop(job.request_id, None)
            if self.engine.abort(job.request_id):  # cancelled while still queued
                self._publish_gauges()

    async def _batch_loop(self) -> None:
        while True:
            batch = self.engine.next_batch()
            if not batch:
                self._wake.clear()
                self._publish_gauges()
                await self._wake.wait()
                continue
            start = self.clock.now()
            timing = prefill_time(PrefillBatch(
                tuple(j.num_prompt_tokens for j in batch),
                tuple(j.num_cached_tokens for j in batch)), self.deployment)
            self.num_running = len(batch)
            self._publish_gauges()
            self._record_batch(batch, timing)
            await self.clock.sleep_until(start + timing.total_s)
            self.num_running = 0
            for job in batch:
                entry = self._futures.get(job.request_id)
                if entry is not None and not entry[1].done():
                    entry[1].set_result(BatchResult(start - entry[0], timing.total_s))
                    m = self.metrics
                    m.queue_time.labels(**m.labels).observe(start - entry[0])
                    m.prefill_time.labels(**m.labels).observe(timing.total_s)

    def _record_batch(self, batch: list[PrefillJob], timing: object) -> None:
        m, labels = self.metrics, self.metrics.labels
        m.hw.on_step(timing)  # type: ignore[arg-type]
        num_new = sum(j.num_new_tokens for j in batch)
        m.iteration_tokens.labels(**labels).observe(num_new)
        m.set_usage(min(1.0, num_new / self.engine.max_num_batched_tokens))

    def _publish_gauges(self) -> None:
        self.metrics.set_queues(self.num_running, self.engine.num_waiting)
