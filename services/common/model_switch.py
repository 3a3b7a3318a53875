"""A worker's side of a model switch: the WorkerService.SwitchModel RPC.

The scheduler's lifecycle chose this instance to hold another served model
(supernode.lifecycle.models) and has already taken it out of routing. The worker:

1. refuses new requests (`SwitchHooks.begin`: one that raced the order is refused and tried
   elsewhere) and lets what was routed to it finish (drain). Every request routed here ends:
   it finishes, or the scheduler ends it (its deadline, `scheduler.model_wait_s`) and frees it
   here;
2. becomes an instance of the new model (`SwitchHooks.become`: engine and pricing rebuilt for
   the model on the same shape) and registers again as `loading` it, with the new shape and
   capacity;
3. loads it as a starting worker does (`ModelLoader.load`: through EMS, which reads the tier
   that holds it, pacing the load with every other; without EMS, priced alone), at the current
   speedup;
4. reports `ready` with the new model (a heartbeat at once): the scheduler routes its requests
   here and wakes those that waited.
A second order while one runs is refused; an order for the model it holds is accepted at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from services.common.model_loading import ModelLoader
from services.common.registration import Registrar
from services.common.shape import instance_shape
from supernode.config import ClusterConfig
from supernode.deployment import Role, ServedModel, instance_deployment, served_models
from supernode.perf import Deployment
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwitchHooks:
    """What a switch needs from the prefill or decode role."""

    begin: Callable[[], None]
    """Refuse new requests from now on."""
    is_idle: Callable[[], bool]
    """Nothing routed here is left."""
    become: Callable[[Deployment, ServedModel], pb.Capacity]
    """Rebuild the (idle) instance for the model's deployment; its new capacity."""
    end: Callable[[], None]
    """Take requests again (for the model it holds now)."""


class ModelSwitcher(pb_grpc.WorkerServiceServicer):
    """Carries out switch orders for one worker; `registrar` is set once it exists."""

    def __init__(self, config: ClusterConfig, role: Role, model: ServedModel,
                 loader: ModelLoader, hooks: SwitchHooks) -> None:
        self.config = config
        self.role = role
        self.model = model
        self.loader = loader
        self.hooks = hooks
        self.registrar: Registrar | None = None
        self.models = {m.name: m for m in served_models(config)}
        self._task: asyncio.Task[None] | None = None

    async def SwitchModel(self, request: pb.SwitchModelRequest,
                          context: grpc.aio.ServicerContext) -> pb.SwitchModelResponse:
        target = self.models.get(request.model)
        if target is None:
            return pb.SwitchModelResponse(reason=f"model {request.model!r} is not served")
        if self._task is not None and not self._task.done():
            return pb.SwitchModelResponse(reason=f"already switching to {self.model.name}")
        if self.registrar is None or self.registrar.draining:
            return pb.SwitchModelResponse(reason="shutting down")
        if target == self.model:
            self.registrar.set_state(pb.WORKER_STATE_READY)
            return pb.SwitchModelResponse(accepted=True)
        log.info("switching from %s to %s (the scheduler expects a load from %s, %.1f model s)",
                 self.model.name, target.name, request.expected_source, request.estimated_s)
        self._task = asyncio.create_task(self._switch(target, request.local_dram),
                                         name="model-switch")
        return pb.SwitchModelResponse(accepted=True)

    async def _switch(self, target: ServedModel, local_dram: bool) -> None:
        registrar = self.registrar
        assert registrar is not None
        self.hooks.begin()
        await self._drain()
        d = instance_deployment(self.config, self.role, target.profile)
        capacity = self.hooks.become(d, target)
        self.model = target
        registrar.switch_model(target.name, instance_shape(d), capacity,
                               pb.ModelLoadStatus(model_id=target.model_id))
        await self.loader.switch(registrar, d, target, local_dram)
        self.hooks.end()

    async def _drain(self) -> None:
        started = time.monotonic()
        while not self.hooks.is_idle():
            await asyncio.sleep(0.02)
        log.info("switch: drained in %.2f wall s", time.monotonic() - started)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
