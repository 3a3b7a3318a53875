"""The scheduler's RegistryService: workers register, heartbeat (the reply carries the
injected faults that apply to them) and deregister (to drain, or for good); lapsed leases
expire.

Takeover protection: while a worker's lease runs, its id can be registered again only with
the same advertised address from the same host (the worker itself, reconnecting); any other
Register for that id is refused with ALREADY_EXISTS until the lease lapses. Each Register
returns a fresh lease token and only heartbeats carrying it renew the lease, so no other
caller can keep an entry alive after its worker died. Deregister needs the same token (and
the registered address): no other caller can take a live worker out of routing.

Every change the lifecycle must hear of (a registration, a new state or model, a worker gone)
is passed to `on_change(worker_id)`: that is how a finished model switch, or a worker ready
with a model requests wait for, reaches the scheduler's lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from services.scheduler.fault_book import FaultBook
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.token_streams import TokenStreams
from supernode.engine.registry import (
    ModelLoadInfo,
    WorkerInfo,
    WorkerKind,
    WorkerLoad,
    WorkerRegistry,
    WorkerState,
)
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_KINDS = {pb.WORKER_KIND_PREFILL: WorkerKind.PREFILL, pb.WORKER_KIND_DECODE: WorkerKind.DECODE,
          pb.WORKER_KIND_EMS: WorkerKind.EMS}
# A worker that reports no state models no load: it is ready.
_STATES = {pb.WORKER_STATE_LOADING: WorkerState.LOADING}


def _state(state: int) -> WorkerState:
    return _STATES.get(state, WorkerState.READY)


def _model_load(message: pb.RegisterRequest | pb.HeartbeatRequest) -> ModelLoadInfo | None:
    if not message.HasField("model_load"):
        return None
    m = message.model_load
    return ModelLoadInfo(m.model_id, m.source, m.estimated_s, m.load_s)


@dataclass(frozen=True)
class Lease:
    """Who registered a worker id last: the token its heartbeats carry, and where from."""

    token: str
    address: str
    peer_host: str


def peer_host(peer: str) -> str:
    """The host of a grpc peer string ('ipv4:10.0.0.7:5123', 'ipv6:%5B::1%5D:5123')."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return urllib.parse.unquote(rest.rpartition(":")[0]).strip("[]")
    return peer


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
        self.on_change: Callable[[str], None] = lambda worker_id: None
        self._leases: dict[str, Lease] = {}

    async def Register(self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
                       ) -> pb.RegisterResponse:
        kind = _KINDS.get(request.kind)
        if kind is None or not request.worker_id or not request.address:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "worker_id, address and a known kind are required")
        now, host = time.monotonic(), peer_host(context.peer())
        if self._held_by_another(request, host, now):
            log.warning("refused to register %s at %s from %s: a live worker holds that id",
                        request.worker_id, request.address, host)
            self.metrics.registrations_refused.inc()
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS,
                f"worker id {request.worker_id!r} is held by a live worker at another address; "
                f"it frees {self.registry.lease_s:g}s after that worker's last heartbeat")
        shape, cap = request.shape, request.capacity
        self.registry.register(WorkerInfo(
            worker_id=request.worker_id, kind=kind, address=request.address,
            metrics_address=request.metrics_address, num_devices=shape.num_devices,
            num_dies=shape.num_dies, kv_capacity_tokens=cap.kv_capacity_tokens,
            max_num_seqs=cap.max_num_seqs, max_num_batched_tokens=cap.max_num_batched_tokens,
            state=_state(request.state), model_load=_model_load(request), model=request.model,
        ), now)
        lease = Lease(secrets.token_hex(16), request.address, host)
        self._leases[request.worker_id] = lease
        if kind == WorkerKind.DECODE:
            self.streams.connect(request.worker_id, request.address)
        log.info("worker %s (%s) registered at %s, %s%s", request.worker_id, kind.value,
                 request.address, _state(request.state).value,
                 f", model {request.model}" if request.model else "")
        self._count()
        self.on_change(request.worker_id)
        return pb.RegisterResponse(heartbeat_interval_s=self.heartbeat_interval_s,
                                   lease_s=self.registry.lease_s, lease_token=lease.token)

    def _held_by_another(self, request: pb.RegisterRequest, host: str, now_s: float) -> bool:
        holder = self.registry.holder(request.worker_id, now_s)
        if holder is None:
            return False
        lease = self._leases.get(request.worker_id)
        return holder.address != request.address or lease is None or lease.peer_host != host

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext
                        ) -> pb.HeartbeatResponse:
        lease = self._leases.get(request.worker_id)
        if lease is None or not secrets.compare_digest(lease.token, request.lease_token):
            return pb.HeartbeatResponse(known=False)
        now = time.monotonic()
        before = self.registry.get(request.worker_id)
        state = _state(request.state)
        known = self.registry.heartbeat(request.worker_id, _load(request.load), now,
                                        state, _model_load(request), request.model or None)
        if before is not None and (before.state is not state
                                   or (request.model and before.model != request.model)):
            log.info("worker %s is %s%s", request.worker_id, state.value,
                     f" with model {request.model}" if request.model else "")
            self._count()
            self.on_change(request.worker_id)
        info = self.registry.get(request.worker_id) if known else None
        faults = (self.faults.for_worker(info.worker_id, info.kind, now)
                  if info is not None and self.faults is not None else ())
        return pb.HeartbeatResponse(known=known, faults=faults)

    async def Deregister(self, request: pb.DeregisterRequest,
                         context: grpc.aio.ServicerContext) -> pb.DeregisterResponse:
        """Drain: route nothing new to the worker, keep its streams and lease. Otherwise: it
        is gone, and what still runs on it fails over now rather than after its lease. Only
        the registration's own lease token (and address) can do either."""
        info = self.registry.get(request.worker_id)
        lease = self._leases.get(request.worker_id)
        if (info is None or lease is None or info.address != request.address
                or not secrets.compare_digest(lease.token, request.lease_token)):
            log.warning("refused to deregister %s at %s: no registration with that address "
                        "and lease token", request.worker_id, request.address)
            return pb.DeregisterResponse(found=False)
        if request.drain:
            self.registry.drain(info.worker_id)
            log.info("worker %s (%s) draining: no new requests routed to it", info.worker_id,
                     info.kind.value)
        else:
            self.registry.remove(info.worker_id)
            self._leases.pop(info.worker_id, None)
            if info.kind == WorkerKind.DECODE:
                await self.streams.disconnect(info.worker_id)
            log.info("worker %s (%s) left", info.worker_id, info.kind.value)
        self._count()
        self.on_change(info.worker_id)
        return pb.DeregisterResponse(found=True)

    def on_stream_broken(self, worker_id: str, address: str) -> None:
        """A decode's token stream broke: the process is most likely gone (killed, crashed),
        so it leaves routing now rather than after its lease; a live one registers again at
        its next heartbeat."""
        info = self.registry.get(worker_id)
        if info is None or info.address != address:
            return
        self.registry.remove(worker_id)
        self._leases.pop(worker_id, None)
        log.warning("decode %s unreachable (its token stream broke); removed from routing "
                    "until it registers again", worker_id)
        self._count()
        self.on_change(worker_id)

    async def expire_forever(self) -> None:
        """Drop workers whose lease lapsed, every heartbeat interval."""
        while True:
            await asyncio.sleep(self.heartbeat_interval_s / 2)
            gone = self.registry.expire(time.monotonic())
            for worker in gone:  # before any await, so a re-registration keeps its new lease
                self._leases.pop(worker.worker_id, None)
                self.on_change(worker.worker_id)
            for worker in gone:
                log.warning("worker %s (%s) missed its heartbeats; removed from routing",
                            worker.worker_id, worker.kind.value)
                if worker.kind == WorkerKind.DECODE:
                    await self.streams.disconnect(worker.worker_id)
            self._count()

    def _count(self) -> None:
        for kind in WorkerKind:
            self.metrics.workers.labels(pool=kind.value).set(len(self.registry.live(kind)))
            registered = self.registry.registered(kind)
            for state in WorkerState:
                self.metrics.workers_by_state.labels(pool=kind.value, state=state.value).set(
                    sum(w.state is state for w in registered))
