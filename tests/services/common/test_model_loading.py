"""A worker's model load over real gRPC: its state reaches the scheduler's registry as
loading, then ready after the modelled load; through EMS (verified blocks, retry without EMS
on a bad one) or, without EMS, priced alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import CollectorRegistry

from services.common.model_loading import ModelLoader, ModelLoadSeries
from services.common.registration import Registrar
from services.ems.models import ModelCacheSettings
from services.ems.servicer import build_servicer
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.registry_servicer import RegistryServicer
from services.scheduler.token_streams import TokenStreams
from supernode.clock import WallClock
from supernode.config import load_config
from supernode.engine.registry import WorkerKind, WorkerRegistry, WorkerState
from supernode.perf import Deployment
from supernode.perf.load import load_time
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

SPEEDUP = 1000.0
DEPLOYMENT = Deployment.build("ascend-910c", "llama-3.1-70b", 8, dp=2, tp=8, ep=1)


async def serve(add) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    add(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def scheduler() -> AsyncIterator[tuple[WorkerRegistry, str]]:
    """A real RegistryService: the registry workers report to, and its address."""
    registry = WorkerRegistry(lease_s=30.0)
    servicer = RegistryServicer(registry, TokenStreams("test"),
                                SchedulerMetrics(CollectorRegistry(), "m", 4096), 0.05)
    server, address = await serve(lambda s: pb_grpc.add_RegistryServiceServicer_to_server(
        servicer, s))
    yield registry, address
    await server.stop(None)


def loader(source: str, ems: str | None, registry: CollectorRegistry,
           ems_wait_s: float = 5.0) -> ModelLoader:
    config = load_config(None, {"model_load.source": source, "speedup": SPEEDUP,
                                "kv_payload_scale": 1e-6})
    series = ModelLoadSeries(registry, {"model_name": "m", "engine": "w"})
    return ModelLoader(config, DEPLOYMENT, "w", ems, WallClock(SPEEDUP), series, ems_wait_s)


async def run_worker(scheduler_address: str, model_loader: ModelLoader) -> Registrar:
    registrar = Registrar(scheduler_address, pb.RegisterRequest(
        worker_id="w", kind=pb.WORKER_KIND_PREFILL, address="127.0.0.1:1"), pb.Load)
    model_loader.start(registrar)
    registrar.start()
    await asyncio.wait_for(registrar.registered.wait(), 10)
    return registrar


async def until_ready(registry: WorkerRegistry, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not registry.live(WorkerKind.PREFILL):
        assert time.monotonic() < deadline, registry.all()
        await asyncio.sleep(0.01)


async def test_skip_registers_ready_at_once(scheduler) -> None:
    """With no load modelled the worker reports no state: ready, routed at once."""
    registry, address = scheduler
    metrics = CollectorRegistry()
    registrar = await run_worker(address, loader("skip", None, metrics))
    assert [w.worker_id for w in registry.live(WorkerKind.PREFILL)] == ["w"]
    assert registry.get("w").model_load is None
    assert metrics.get_sample_value("supernode_worker_state",
                                    {"model_name": "m", "engine": "w", "state": "ready"}) == 1
    await registrar.stop()


async def test_without_ems_the_load_is_priced_alone(scheduler) -> None:
    """No EMS: the worker is loading (not routed) until the modelled OBS time has passed."""
    registry, address = scheduler
    metrics = CollectorRegistry()
    model_loader = loader("obs", None, metrics)
    began = time.monotonic()
    registrar = await run_worker(address, model_loader)
    assert registry.get("w").state is WorkerState.LOADING
    assert not registry.live(WorkerKind.PREFILL)
    await until_ready(registry)
    expected = load_time(DEPLOYMENT, "obs").total_s
    assert time.monotonic() - began >= expected / SPEEDUP
    info = registry.get("w").model_load
    assert (info.source, info.model_id) == ("obs", "llama-3.1-70b@v1")
    assert info.load_s == pytest.approx(expected)
    assert metrics.get_sample_value("supernode_model_load_seconds", {
        "model_name": "m", "engine": "w", "source": "obs"}) == pytest.approx(expected)
    await registrar.stop()


async def test_through_ems_cold_then_warm(scheduler) -> None:
    """The first worker loads from OBS through EMS and warms it; the next loads from EMS."""
    registry, address = scheduler
    ems = build_servicer(backend="memory", capacity_bytes=10**12, registry=CollectorRegistry(),
                         models=ModelCacheSettings(1e-6), clock=WallClock(SPEEDUP))
    server, ems_address = await serve(lambda s: pb_grpc.add_EmsServiceServicer_to_server(ems, s))
    sources = []
    for _ in range(2):
        registry.remove("w")
        registrar = await run_worker(address, loader("obs", ems_address, CollectorRegistry()))
        await until_ready(registry)
        sources.append(registry.get("w").model_load.source)
        await registrar.stop()
    assert sources == ["obs", "ems"]
    await server.stop(None)
    await ems.close()


class CorruptingEms(pb_grpc.EmsServiceServicer):
    """An EMS whose first load from EMS sends a corrupted block."""

    def __init__(self) -> None:
        self.requests: list[pb.LoadModelRequest] = []

    async def LoadModel(self, request, context):
        self.requests.append(request)
        if request.exclude_ems:
            yield pb.ModelLoadEvent(plan=pb.ModelLoadPlan(source="obs", estimated_s=1.0))
        else:
            yield pb.ModelLoadEvent(plan=pb.ModelLoadPlan(source="ems", num_blocks=1))
            yield pb.ModelLoadEvent(block=pb.KvBlock(payload=b"abc", crc32=1))
        yield pb.ModelLoadEvent(done=pb.ModelLoadDone(load_s=1.0))


async def test_a_corrupted_block_loads_again_without_ems(scheduler) -> None:
    """A block failing its checksum is never used: the load is redone with exclude_ems."""
    registry, address = scheduler
    fake = CorruptingEms()
    server, ems_address = await serve(lambda s: pb_grpc.add_EmsServiceServicer_to_server(fake, s))
    registrar = await run_worker(address, loader("obs", ems_address, CollectorRegistry()))
    await until_ready(registry)
    assert [r.exclude_ems for r in fake.requests] == [False, True]
    assert registry.get("w").model_load.source == "obs"
    await registrar.stop()
    await server.stop(None)


async def test_an_unreachable_ems_falls_back_to_loading_alone(scheduler) -> None:
    """EMS not answering within the wait: the worker loads without it and still gets ready."""
    registry, address = scheduler
    registrar = await run_worker(address, loader("dram", "127.0.0.1:1", CollectorRegistry(),
                                                 ems_wait_s=0.2))
    await until_ready(registry)
    assert registry.get("w").model_load.source == "dram"
    await registrar.stop()
