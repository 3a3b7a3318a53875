"""A worker's side of the registry: register with the scheduler, then heartbeat its load.

The loop never gives up: when the scheduler is unreachable it retries with backoff, and when
the scheduler answers `known = false` (it restarted or dropped us) it registers again. A
refused registration is retried the same way: UNAUTHENTICATED (this worker's cluster token is
not the scheduler's) and ALREADY_EXISTS (a live worker holds the id; it frees once that
worker's lease lapses) are logged as errors with their cause. The worker's state (loading its
model, then ready) rides on both messages; `set_state` sends it at once rather than at the
next heartbeat, so readiness reaches routing without delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import grpc

from services.common.grpc_server import insecure_channel
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class Registrar:
    """Keeps one worker registered with the scheduler at `scheduler_address`."""

    def __init__(
        self,
        scheduler_address: str,
        registration: pb.RegisterRequest,
        current_load: Callable[[], pb.Load],
        cluster_token: str | None = None,
    ) -> None:
        self.scheduler_address = scheduler_address
        self.registration = registration
        self.current_load = current_load
        self.cluster_token = cluster_token
        self._lease_token = ""
        self.registered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def set_state(self, state: pb.WorkerState.ValueType,
                  model_load: pb.ModelLoadStatus | None = None) -> None:
        """Report `state` (and the load's status) now, and in every later registration."""
        self.registration.state = state
        if model_load is not None:
            self.registration.model_load.CopyFrom(model_load)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="registrar")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with insecure_channel(self.scheduler_address, self.cluster_token) as channel:
            stub = pb_grpc.RegistryServiceStub(channel)
            backoff_s = 0.1
            was_registered = False
            while True:
                try:
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
            request = pb.HeartbeatRequest(worker_id=self.registration.worker_id,
                                          load=self.current_load(),
                                          state=self.registration.state,
                                          lease_token=self._lease_token)
            if self.registration.HasField("model_load"):
                request.model_load.CopyFrom(self.registration.model_load)
            response = await stub.Heartbeat(request, timeout=2.0)
            if not response.known:
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
