"""The live side of the lifecycle's model switches: orders out, the registry's changes in.

The lifecycle (supernode.lifecycle.models) decides which instance switches to which model and
when; this module only carries that out: each `ModelSwitch` becomes a SwitchModel RPC to the
instance (a refusal or a failed call is reported back: `on_switch_failed`, and another instance
may be chosen), and every change of the registry (`RegistryServicer.on_change`: a registration,
a new state or model, a worker gone) goes to the lifecycle's `on_worker_update`, which wakes the
requests waiting for a model and reports a finished switch (logged and counted here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from services.scheduler.metrics import SchedulerMetrics
from supernode.clock import Clock
from supernode.engine.registry import WorkerInfo
from supernode.lifecycle.models import ModelSwitch
from supernode.lifecycle.scheduler import Lifecycle
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SWITCH_TIMEOUT_S = 5.0
"""Wall seconds a SwitchModel RPC may take (the instance answers at once, then switches)."""


class ModelSwitches:
    """Carries out the lifecycle's switches; `channel(worker)` is the flow's channel cache."""

    def __init__(self, lifecycle: Lifecycle, clock: Clock, metrics: SchedulerMetrics,
                 channel: Callable[[WorkerInfo], grpc.aio.Channel]) -> None:
        self.lifecycle = lifecycle
        self.clock = clock
        self.metrics = metrics
        self.channel = channel
        self._background: set[asyncio.Task[None]] = set()
        lifecycle.on_switch = self.order

    def order(self, switch: ModelSwitch, now: float) -> None:
        """The lifecycle chose an instance to switch models: tell it (in the background)."""
        log.info("switching %s (%s) from %s to %s: expected from %s, %.1f model s alone",
                 switch.worker_id, switch.kind.value, switch.from_model, switch.to.name,
                 switch.source, switch.estimated_s)
        self.metrics.on_switch_started(switch)
        task = asyncio.get_running_loop().create_task(self._send(switch))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send(self, switch: ModelSwitch) -> None:
        worker = self.lifecycle.registry.get(switch.worker_id)
        reason = "the worker left"
        if worker is not None:
            stub = pb_grpc.WorkerServiceStub(self.channel(worker))
            try:
                response = await stub.SwitchModel(pb.SwitchModelRequest(
                    model=switch.to.name, local_dram=switch.local_dram,
                    expected_source=switch.source, estimated_s=switch.estimated_s),
                    timeout=SWITCH_TIMEOUT_S)
                if response.accepted:
                    return
                reason = response.reason
            except grpc.aio.AioRpcError as e:
                reason = f"{e.code().name}: {e.details()}"
        log.warning("switch of %s to %s failed: %s", switch.worker_id, switch.to.name, reason)
        self.metrics.on_switch_failed(switch)
        self.lifecycle.on_switch_failed(switch.worker_id, self.clock.now())

    def on_worker_change(self, worker_id: str) -> None:
        """The registry changed for `worker_id` (registered, new state or model, gone)."""
        done = self.lifecycle.on_worker_update(worker_id, self.clock.now())
        if done is None:
            return
        worker = self.lifecycle.registry.get(worker_id)
        source = worker.model_load.source if worker and worker.model_load else "unknown"
        log.info("%s switched from %s to %s in %.1f model s (loaded from %s)", worker_id,
                 done.switch.from_model, done.switch.to.name, done.seconds, source)
        self.metrics.on_switch_done(done, source)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
