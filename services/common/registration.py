"""A worker's side of the registry: register with the scheduler, then heartbeat its load.

The loop never gives up: when the scheduler is unreachable it retries with backoff, and when
the scheduler answers `known = false` (it restarted or dropped us) it registers again. A
refused registration is retried the same way: UNAUTHENTICATED (this worker's cluster token is
not the scheduler's) and ALREADY_EXISTS (a live worker holds the id; it frees once that
worker's lease lapses) are logged as errors with their cause. The worker's state (loading its
model, then ready) rides on both messages; `set_state` sends it at once rather than at the
next heartbeat, so readiness reaches routing without delay. So does the served model it holds;
a model switch (`switch_model`) registers again at once, since the shape and capacity change
with the model.
Shutting down is two steps: `drain` (the scheduler routes nothing new here; heartbeats go on,
so the lease and the token streams stay up while running requests finish), then `leave`. Both
carry this registration's lease token, as heartbeats do: only the process that registered can
take itself out of routing. Heartbeat replies carry the injected faults that apply to this
worker; they go to `on_faults`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import grpc

from services.common.grpc_server import insecure_channel
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

FaultsCallback = Callable[[Sequence[pb.Fault]], None]


class Registrar:
    """Keeps one worker registered with the scheduler at `scheduler_address`."""

    def __init__(
        self,
        scheduler_address: str,
        registration: pb.RegisterRequest,
        current_load: Callable[[], pb.Load],
        on_faults: FaultsCallback | None = None,
        cluster_token: str | None = None,
    ) -> None:
        self.scheduler_address = scheduler_address
        self.registration = registration
        self.current_load = current_load
        self.on_faults = on_faults
        self.cluster_token = cluster_token
        self._lease_token = ""
        self.registered = asyncio.Event()
        self.draining = False
        self._channel: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._register_again = False

    def set_state(self, state: pb.WorkerState.ValueType,
                  model_load: pb.ModelLoadStatus | None = None) -> None:
        """Report `state` (and the load's status) now, and in every later registration."""
        self.registration.state = state
        if model_load is not None:
            self.registration.model_load.CopyFrom(model_load)
        self._wake.set()

    def switch_model(self, model: str, shape: pb.InstanceShape, capacity: pb.Capacity,
                     model_load: pb.ModelLoadStatus) -> None:
        """The worker holds `model` now (with this shape and capacity) and is loading it:
        register again at once."""
        r = self.registration
        r.model = model
        r.shape.CopyFrom(shape)
        r.capacity.CopyFrom(capacity)
        r.state = pb.WORKER_STATE_LOADING
        r.model_load.CopyFrom(model_load)
        self._register_again = True
        self._wake.set()

    def start(self) -> None:
        self._channel = insecure_channel(self.scheduler_address, self.cluster_token)
        self._task = asyncio.create_task(self._run(pb_grpc.RegistryServiceStub(self._channel)),
                                         name="registrar")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()

    async def drain(self) -> bool:
        """Ask the scheduler to route nothing new here; heartbeats go on. False when the
        scheduler could not be told (it is down: it routes nothing here either)."""
        self.draining = True
        return await self._deregister(drain=True)

    async def leave(self) -> None:
        """Stop heartbeating and tell the scheduler this worker is gone (best effort): what
        still runs here fails over at once instead of after the lease."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._deregister(drain=False)
        await self.stop()

    async def _deregister(self, drain: bool) -> bool:
        if self._channel is None or not self._lease_token:
            return False
        stub = pb_grpc.RegistryServiceStub(self._channel)
        try:
            response = await stub.Deregister(pb.DeregisterRequest(
                worker_id=self.registration.worker_id, address=self.registration.address,
                drain=drain, lease_token=self._lease_token), timeout=1.0)
        except grpc.aio.AioRpcError as e:
            log.warning("could not deregister %s from %s (%s)", self.registration.worker_id,
                        self.scheduler_address, e.code().name)
            return False
        if not response.found:
            log.warning("scheduler %s no longer holds %s under this lease; nothing to "
                        "deregister", self.scheduler_address, self.registration.worker_id)
            return False
        log.info("%s %s the scheduler", self.registration.worker_id,
                 "draining: deregistered from" if drain else "left")
        return True

    async def _run(self, stub: pb_grpc.RegistryServiceStub) -> None:
        backoff_s = 0.1
        was_registered = False
        interval_s = 0.5
        while True:
            try:
                if not self.draining:
                    interval_s = await self._register(stub)
                    backoff_s, was_registered = 0.1, True
                await self._heartbeat_until_forgotten(stub, interval_s)
            except grpc.aio.AioRpcError as e:
                self.registered.clear()
                self._log_failure(e, was_registered, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(2.0, backoff_s * 2)

    async def _register(self, stub: pb_grpc.RegistryServiceStub) -> float:
        response = await stub.Register(self.registration, timeout=2.0)
        self._lease_token = response.lease_token
        self.registered.set()
        log.info("registered %s with scheduler %s", self.registration.worker_id,
                 self.scheduler_address)
        return response.heartbeat_interval_s

    async def _heartbeat_until_forgotten(self, stub: pb_grpc.RegistryServiceStub,
                                         interval_s: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval_s)
            self._wake.clear()
            if self._register_again and not self.draining:
                self._register_again = False
                return
            request = pb.HeartbeatRequest(worker_id=self.registration.worker_id,
                                          load=self.current_load(),
                                          state=self.registration.state,
                                          model=self.registration.model,
                                          lease_token=self._lease_token)
            if self.registration.HasField("model_load"):
                request.model_load.CopyFrom(self.registration.model_load)
            response = await stub.Heartbeat(request, timeout=2.0)
            if self.on_faults is not None:
                self.on_faults(response.faults)
            if not response.known and not self.draining:
                log.warning("scheduler forgot %s; registering again", self.registration.worker_id)
                return

    def _log_failure(self, e: grpc.aio.AioRpcError, was_registered: bool,
                     backoff_s: float) -> None:
        code = e.code()
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.ALREADY_EXISTS):
            log.error("scheduler %s refused %s: %s (%s); retrying in %.1fs",
                      self.scheduler_address, self.registration.worker_id, e.details(),
                      code.name, backoff_s)
            return
        # Before the first registration the scheduler may simply not be up yet.
        level = logging.WARNING if was_registered or backoff_s >= 2.0 else logging.DEBUG
        log.log(level, "scheduler %s unreachable (%s); retrying in %.1fs",
                self.scheduler_address, code.name, backoff_s)
