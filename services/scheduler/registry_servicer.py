"""The scheduler's RegistryService: workers register, heartbeat (the reply carries the
injected faults that apply to them) and deregister (to drain, or for good); lapsed leases
expire."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from services.scheduler.fault_book import FaultBook
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.token_streams import TokenStreams
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerLoad, WorkerRegistry
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_KINDS = {pb.WORKER_KIND_PREFILL: WorkerKind.PREFILL, pb.WORKER_KIND_DECODE: WorkerKind.DECODE,
          pb.WORKER_KIND_EMS: WorkerKind.EMS}


def _load(load: pb.Load) -> WorkerLoad:
    return WorkerLoad(num_running=load.num_running, num_waiting=load.num_waiting,
                      kv_used_tokens=load.kv_used_tokens,
                      num_queued_tokens=load.num_queued_tokens,
                      busy_fraction=load.busy_fraction)


class RegistryServicer(pb_grpc.RegistryServiceServicer):
    def __init__(self, registry: WorkerRegistry, streams: TokenStreams,
                 metrics: SchedulerMetrics, heartbeat_interval_s: float,
                 faults: FaultBook | None = None) -> None:
        self.registry = registry
        self.streams = streams
        self.metrics = metrics
        self.heartbeat_interval_s = heartbeat_interval_s
        self.faults = faults

    async def Register(self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
                       ) -> pb.RegisterResponse:
        kind = _KINDS.get(request.kind)
        if kind is None or not request.worker_id or not request.address:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "worker_id, address and a known kind are required")
        shape, cap = request.shape, request.capacity
        self.registry.register(WorkerInfo(
            worker_id=request.worker_id, kind=kind, address=request.address,
            metrics_address=request.metrics_address, num_devices=shape.num_devices,
            num_dies=shape.num_dies, kv_capacity_tokens=cap.kv_capacity_tokens,
            max_num_seqs=cap.max_num_seqs, max_num_batched_tokens=cap.max_num_batched_tokens,
        ), time.monotonic())
        if kind == WorkerKind.DECODE:
            self.streams.connect(request.worker_id, request.address)
        log.info("worker %s (%s) registered at %s", request.worker_id, kind.value,
                 request.address)
        self._count()
        return pb.RegisterResponse(heartbeat_interval_s=self.heartbeat_interval_s,
                                   lease_s=self.registry.lease_s)

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext
                        ) -> pb.HeartbeatResponse:
        now = time.monotonic()
        known = self.registry.heartbeat(request.worker_id, _load(request.load), now)
        info = self.registry.get(request.worker_id) if known else None
        faults = (self.faults.for_worker(info.worker_id, info.kind, now)
                  if info is not None and self.faults is not None else ())
        return pb.HeartbeatResponse(known=known, faults=faults)

    async def Deregister(self, request: pb.DeregisterRequest,
                         context: grpc.aio.ServicerContext) -> pb.DeregisterResponse:
        """Drain: route nothing new to the worker, keep its streams. Otherwise: it is gone,
        and what still runs on it fails over now rather than after its lease."""
        info = self.registry.get(request.worker_id)
        if info is None or info.address != request.address:
            return pb.DeregisterResponse(found=False)
        if request.drain:
            self.registry.drain(info.worker_id)
            log.info("worker %s (%s) draining: no new requests routed to it", info.worker_id,
                     info.kind.value)
        else:
            self.registry.remove(info.worker_id)
            if info.kind == WorkerKind.DECODE:
                await self.streams.disconnect(info.worker_id)
            log.info("worker %s (%s) left", info.worker_id, info.kind.value)
        self._count()
        return pb.DeregisterResponse(found=True)

    def on_stream_broken(self, worker_id: str, address: str) -> None:
        """A decode's token stream broke: the process is most likely gone (killed, crashed),
        so it leaves routing now rather than after its lease; a live one registers again at
        its next heartbeat."""
        info = self.registry.get(worker_id)
        if info is None or info.address != address:
            return
        self.registry.remove(worker_id)
        log.warning("decode %s unreachable (its token stream broke); removed from routing "
                    "until it registers again", worker_id)
        self._count()

    async def expire_forever(self) -> None:
        """Drop workers whose lease lapsed, every heartbeat interval."""
        while True:
            await asyncio.sleep(self.heartbeat_interval_s / 2)
            for worker in self.registry.expire(time.monotonic()):
                log.warning("worker %s (%s) missed its heartbeats; removed from routing",
                            worker.worker_id, worker.kind.value)
                if worker.kind == WorkerKind.DECODE:
                    await self.streams.disconnect(worker.worker_id)
            self._count()

    def _count(self) -> None:
        for kind in WorkerKind:
            self.metrics.workers.labels(pool=kind.value).set(len(self.registry.live(kind)))
