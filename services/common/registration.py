"""A worker's side of the registry: register with the scheduler, then heartbeat its load.

The loop never gives up: when the scheduler is unreachable it retries with backoff, and when
the scheduler answers `known = false` (it restarted or dropped us) it registers again.
Shutting down is two steps: `drain` (the scheduler routes nothing new here; heartbeats go on,
so the lease and the token streams stay up while running requests finish), then `leave`.
Heartbeat replies carry the injected faults that apply to this worker; they go to `on_faults`.
"""

from __future__ import annotations

import asyncio
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
    ) -> None:
        self.scheduler_address = scheduler_address
        self.registration = registration
        self.current_load = current_load
        self.on_faults = on_faults
        self.registered = asyncio.Event()
        self.draining = False
        self._channel: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._channel = insecure_channel(self.scheduler_address)
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
        if self._channel is None:
            return False
        stub = pb_grpc.RegistryServiceStub(self._channel)
        try:
            response = await stub.Deregister(pb.DeregisterRequest(
                worker_id=self.registration.worker_id, address=self.registration.address,
                drain=drain), timeout=1.0)
        except grpc.aio.AioRpcError as e:
            log.warning("could not deregister %s from %s (%s)", self.registration.worker_id,
                        self.scheduler_address, e.code().name)
            return False
        log.info("%s %s the scheduler", self.registration.worker_id,
                 "draining: deregistered from" if drain else "left")
        return response.found

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
                # Before the first registration the scheduler may simply not be up yet.
                level = logging.WARNING if was_registered or backoff_s >= 2.0 else logging.DEBUG
                log.log(level, "scheduler %s unreachable (%s); retrying in %.1fs",
                        self.scheduler_address, e.code().name, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(2.0, backoff_s * 2)

    async def _register(self, stub: pb_grpc.RegistryServiceStub) -> float:
        response = await stub.Register(self.registration, timeout=2.0)
        self.registered.set()
        log.info("registered %s with scheduler %s", self.registration.worker_id,
                 self.scheduler_address)
        return response.heartbeat_interval_s

    async def _heartbeat_until_forgotten(self, stub: pb_grpc.RegistryServiceStub,
                                         interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            request = pb.HeartbeatRequest(worker_id=self.registration.worker_id,
                                          load=self.current_load())
            response = await stub.Heartbeat(request, timeout=2.0)
            if self.on_faults is not None:
                self.on_faults(response.faults)
            if not response.known and not self.draining:
                log.warning("scheduler forgot %s; registering again", self.registration.worker_id)
                return
