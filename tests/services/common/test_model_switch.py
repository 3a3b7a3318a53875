"""A worker's side of a model switch (WorkerService.SwitchModel) over real gRPC: it refuses
what it cannot do, drains, becomes the new model's instance, registers loading it, loads it
for its modelled time and reports ready with it."""

from __future__ import annotations

import asyncio
import time

import grpc
from prometheus_client import CollectorRegistry

from services.common.model_loading import ModelLoader, ModelLoadSeries
from services.common.model_switch import ModelSwitcher, SwitchHooks
from services.common.registration import Registrar
from supernode.clock import WallClock
from supernode.config import load_config
from supernode.deployment import instance_deployment, served_models
from supernode.perf.load import load_time
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

SPEEDUP = 5000.0
MODELS = ["deepseek-r1", "deepseek-r1@v2"]


class FakeRegistrar(Registrar):
    """Records what would be sent to the scheduler instead of sending it."""

    def __init__(self) -> None:
        super().__init__("unused:1", pb.RegisterRequest(worker_id="w", model=MODELS[0]), pb.Load)
        self.reports: list[tuple[str, int]] = []

    def set_state(self, state, model_load=None) -> None:  # type: ignore[no-untyped-def]
        super().set_state(state, model_load)
        self.reports.append((self.registration.model, state))

    def switch_model(self, model, shape, capacity, model_load) -> None:  # type: ignore[no-untyped-def]
        super().switch_model(model, shape, capacity, model_load)
        self.reports.append((model, pb.WORKER_STATE_LOADING))


async def test_a_switch_drains_then_loads_the_new_model_for_its_modelled_time() -> None:
    """An unknown model is refused; a known one is accepted at once; the worker refuses new
    requests, waits until idle, becomes the new model's instance, registers loading it and,
    after the modelled load (OBS, priced alone without EMS) at the speedup, ready with it. A
    second order while it runs is refused."""
    config = load_config(None, {"served_models": MODELS, "speedup": SPEEDUP})
    first, second = served_models(config)
    d = instance_deployment(config, "decode", first.profile)
    events: list[str] = []
    idle = {"now": False}

    def become(deployment, model) -> pb.Capacity:  # type: ignore[no-untyped-def]
        events.append(f"become {model.name}")
        return pb.Capacity(kv_capacity_tokens=7)

    hooks = SwitchHooks(begin=lambda: events.append("begin"), is_idle=lambda: idle["now"],
                        become=become, end=lambda: events.append("end"))
    series = ModelLoadSeries(CollectorRegistry(), {"model_name": "m", "engine": "w"})
    loader = ModelLoader(config, d, "w", None, WallClock(SPEEDUP), series, model=first)
    switcher = ModelSwitcher(config, "decode", first, loader, hooks)
    registrar = FakeRegistrar()
    switcher.registrar = registrar
    server = grpc.aio.server()
    pb_grpc.add_WorkerServiceServicer_to_server(switcher, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.WorkerServiceStub(channel)
            unknown = await stub.SwitchModel(pb.SwitchModelRequest(model="gpt-4"), timeout=5)
            assert not unknown.accepted and "not served" in unknown.reason
            started = time.monotonic()
            assert (await stub.SwitchModel(pb.SwitchModelRequest(model=second.name),
                                           timeout=5)).accepted
            again = await stub.SwitchModel(pb.SwitchModelRequest(model=first.name), timeout=5)
            assert not again.accepted and "already switching" in again.reason
            await asyncio.sleep(0.2)
            assert events == ["begin"]  # still draining
            idle["now"] = True
            while (second.name, pb.WORKER_STATE_READY) not in registrar.reports:
                assert time.monotonic() - started < 30, registrar.reports
                await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        assert events == ["begin", f"become {second.name}", "end"]
        assert registrar.reports[0] == (second.name, pb.WORKER_STATE_LOADING)
        assert registrar.registration.capacity.kv_capacity_tokens == 7
        assert registrar.registration.model_load.source == "obs"
        alone = load_time(instance_deployment(config, "decode", second.profile), "obs").total_s
        assert registrar.registration.model_load.load_s >= alone
        assert elapsed >= alone / SPEEDUP
        assert switcher.model == second
    finally:
        await switcher.stop()
        await server.stop(None)
