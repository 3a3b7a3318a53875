"""EMS model cache over real gRPC: is-cached, prefetch, loads from each tier, shared pacing,
metrics by kind, and a Redis-backed pool that keeps models across an EMS restart."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest

from services.ems.models import ModelCacheSettings
from supernode.cache.payload import checksum
from supernode.clock import WallClock
from supernode.perf import Deployment
from supernode.perf.load import load_time, plan_time, prefetch_plan
from supernode.v1 import supernode_pb2 as pb
from tests.services.ems.conftest import Ems

TIMEOUT_S = 60.0
SPEEDUP = 1000.0
"""Model seconds per wall second: a 29 s OBS load of Llama-70B takes 29 ms."""
SETTINGS = ModelCacheSettings(payload_scale=1e-6, block_bytes=1 << 30)
POOL_BYTES = 10**12
SHAPE = pb.InstanceShape(hardware="ascend-910c", model="llama-3.1-70b", num_devices=8, dp=2,
                         tp=8, ep=1, quant="int8")
DEPLOYMENT = Deployment.build("ascend-910c", "llama-3.1-70b", 8, dp=2, tp=8, ep=1)


def image(version: str = "v1", shape: pb.InstanceShape = SHAPE) -> pb.ModelImageRequest:
    return pb.ModelImageRequest(shape=shape, version=version)


async def start(start_ems, speedup: float = SPEEDUP, **kwargs) -> Ems:
    kwargs.setdefault("capacity_bytes", POOL_BYTES)
    return await start_ems(models=SETTINGS, clock=WallClock(speedup), **kwargs)


async def load(ems: Ems, worker_id: str = "w", **fields) -> tuple:
    """Run one LoadModel call: its plan, blocks and done."""
    request = pb.LoadModelRequest(shape=SHAPE, version="v1", worker_id=worker_id, **fields)
    plan, blocks, done = None, [], None
    async for event in ems.stub.LoadModel(request, timeout=TIMEOUT_S):
        kind = event.WhichOneof("event")
        if kind == "plan":
            plan = event.plan
        elif kind == "block":
            blocks.append(event.block)
        else:
            done = event.done
    return plan, blocks, done


async def until_cached(ems: Ems, deadline_s: float = 30.0) -> pb.ModelStatusResponse:
    deadline = time.monotonic() + deadline_s
    while True:
        status = await ems.stub.ModelStatus(image(), timeout=TIMEOUT_S)
        if status.cached or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.02)


@pytest.fixture(params=["memory", "redis"])
async def model_ems(request, start_ems) -> Ems:
    """An EMS with room for a model, over each backend, pacing at SPEEDUP."""
    if request.param == "redis":
        url = request.getfixturevalue("ems_redis_server").url
        return await start(start_ems, backend="redis", redis_url=url)
    return await start(start_ems, backend="memory")


async def test_a_cold_load_reads_obs_and_warms_ems(model_ems: Ems) -> None:
    """Nothing cached: the load comes from OBS, takes the modelled OBS time, and leaves every
    block of the image in EMS for the next instance."""
    status = await model_ems.stub.ModelStatus(image(), timeout=TIMEOUT_S)
    assert status.model_key == "llama-3.1-70b@v1/int8" and not status.cached
    plan, blocks, done = await load(model_ems)
    expected = load_time(DEPLOYMENT, "obs").total_s
    assert plan.source == "obs" and not blocks and plan.num_sharing == 1
    assert plan.estimated_s == pytest.approx(expected, rel=0.05)
    assert expected * 0.99 <= done.load_s <= expected * 1.5
    assert "obs_read" in done.breakdown
    status = await model_ems.stub.ModelStatus(image(), timeout=TIMEOUT_S)
    assert status.cached and status.num_cached_blocks == status.num_blocks > 1


async def test_a_warm_load_streams_verified_blocks_from_ems(model_ems: Ems) -> None:
    """Once cached, a load comes from EMS: every block, in order, checksums intact, at the
    EMS read's modelled time (far below OBS)."""
    await load(model_ems)
    plan, blocks, done = await load(model_ems)
    status = await model_ems.stub.ModelStatus(image(), timeout=TIMEOUT_S)
    assert plan.source == "ems" and len(blocks) == plan.num_blocks == status.num_blocks
    assert all(checksum(b.payload) == b.crc32 for b in blocks)
    assert sum(b.true_num_bytes for b in blocks) == status.model_bytes
    assert done.load_s < load_time(DEPLOYMENT, "obs").total_s / 10
    assert done.load_s >= load_time(DEPLOYMENT, "ems").total_s * 0.99


async def test_source_order_ems_then_dram_then_obs(model_ems: Ems) -> None:
    """Uncached with a local copy: DRAM. Cached: EMS, unless excluded."""
    plan, _, _ = await load(model_ems, local_dram=True)
    assert plan.source == "dram"
    assert (await until_cached(model_ems)).cached
    assert (await load(model_ems, local_dram=True))[0].source == "ems"
    assert (await load(model_ems, local_dram=True, exclude_ems=True))[0].source == "dram"
    assert (await load(model_ems, exclude_ems=True))[0].source == "obs"


async def test_prefetch_fills_ems_in_the_background(model_ems: Ems) -> None:
    """Prefetch returns at once with its estimate, reports in flight, then the image is cached;
    prefetching a cached image starts nothing."""
    first = await model_ems.stub.PrefetchModel(image(), timeout=TIMEOUT_S)
    assert first.started and first.estimated_s == pytest.approx(
        plan_time(prefetch_plan(DEPLOYMENT)).total_s, rel=0.05)
    again = await model_ems.stub.PrefetchModel(image(), timeout=TIMEOUT_S)
    assert not again.started and not again.already_cached
    assert (await model_ems.stub.ModelStatus(image(), timeout=TIMEOUT_S)).prefetching
    assert (await until_cached(model_ems)).cached
    assert (await model_ems.stub.PrefetchModel(image(), timeout=TIMEOUT_S)).already_cached
    assert model_ems.sample("supernode_ems_model_prefetches_total", result="done") == 1


async def test_eight_concurrent_obs_loads_each_take_eight_times_one(start_ems) -> None:
    """Loads through one bucket share it: 8 at once each take about 8 x one alone (model
    time, on EMS's clock); a load alone takes one."""
    ems = await start(start_ems, speedup=200.0, backend="memory",
                      capacity_bytes=10**9)  # too small to cache: every load reads OBS
    one = load_time(DEPLOYMENT, "obs").total_s
    results = await asyncio.gather(*(load(ems, f"w{i}") for i in range(8)))
    for plan, _, done in results:
        assert plan.source == "obs"
        assert 7.5 * one <= done.load_s <= 8 * one * 1.4
    assert ems.sample("supernode_ems_model_loads_total", source="obs") == 8
    assert ems.sample("supernode_ems_model_too_large_total") == 1


async def test_model_and_kv_blocks_are_counted_apart(model_ems: Ems) -> None:
    """After a load and a KV put, the per-kind gauges split blocks and bytes by kind."""
    await load(model_ems)
    payload = b"x" * 10
    await model_ems.stub.Put(iter([pb.KvBlock(namespace="m/", key=b"k" * 16, payload=payload,
                                              crc32=checksum(payload), true_num_bytes=1000,
                                              num_tokens=16)]), timeout=TIMEOUT_S)
    status = await model_ems.stub.ModelStatus(image(), timeout=TIMEOUT_S)  # hits every block
    await model_ems.servicer.refresh_gauges()
    assert model_ems.sample("supernode_ems_kind_blocks", kind="kv") == 1
    assert model_ems.sample("supernode_ems_kind_used_bytes", kind="kv") == 1000
    assert model_ems.sample("supernode_ems_kind_blocks", kind="model") == status.num_blocks
    assert model_ems.sample("supernode_ems_kind_used_bytes", kind="model") == status.model_bytes
    assert model_ems.sample("supernode_ems_kind_hit_blocks", kind="model") == status.num_blocks
    assert model_ems.sample("supernode_ems_kind_hit_blocks", kind="kv") == 0
    assert model_ems.sample("supernode_ems_model_written_bytes_total") == status.model_bytes
    assert model_ems.sample("supernode_ems_blocks") == status.num_blocks + 1


async def test_requests_naming_no_image_are_invalid(model_ems: Ems) -> None:
    """An unknown model profile or bad version is INVALID_ARGUMENT, naming the problem."""
    bad_model = pb.InstanceShape(hardware="ascend-910c", model="gpt-9", num_devices=8)
    for request in (image(shape=bad_model), image(version="a/b")):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await model_ems.stub.ModelStatus(request, timeout=TIMEOUT_S)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    call = model_ems.stub.LoadModel(pb.LoadModelRequest(shape=bad_model, version="v1"),
                                    timeout=TIMEOUT_S)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        [event async for event in call]
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "gpt-9" in exc.value.details()


async def test_prefetch_into_a_pool_too_small_is_refused(start_ems) -> None:
    """A model larger than the pool cannot be prefetched: FAILED_PRECONDITION naming both."""
    ems = await start(start_ems, backend="memory", capacity_bytes=10**9)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await ems.stub.PrefetchModel(image(), timeout=TIMEOUT_S)
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "exceeds the EMS pool" in exc.value.details()


async def test_a_redis_pool_keeps_models_across_an_ems_restart(start_ems, ems_redis_server) -> None:
    """Model blocks and manifests live in Redis: a new EMS on the same pool finds the model
    cached and serves the next load from EMS."""
    prefix = f"test:{uuid.uuid4().hex}"
    first = await start(start_ems, backend="redis", redis_url=ems_redis_server.url,
                        key_prefix=prefix)
    await load(first)
    await first.servicer.close()
    second = await start(start_ems, backend="redis", redis_url=ems_redis_server.url,
                         key_prefix=prefix)
    assert (await second.stub.ModelStatus(image(), timeout=TIMEOUT_S)).cached
    plan, blocks, _ = await load(second)
    assert plan.source == "ems" and len(blocks) == plan.num_blocks


async def test_a_load_during_a_prefetch_waits_for_it_then_reads_ems(start_ems) -> None:
    """A load of an image EMS is prefetching does not read OBS beside it: it waits for the
    prefetch, then streams the image from EMS (the paper's cold start with EMS)."""
    ems = await start(start_ems, backend="memory")
    started = time.monotonic()
    assert (await ems.stub.PrefetchModel(image(), timeout=TIMEOUT_S)).started
    plan, blocks, done = await load(ems)
    waited_s = (time.monotonic() - started) * SPEEDUP
    assert plan.source == "ems" and len(blocks) == plan.num_blocks > 0
    prefetch_s = plan_time(prefetch_plan(DEPLOYMENT)).total_s
    assert waited_s >= prefetch_s + done.load_s
    assert done.load_s == pytest.approx(load_time(DEPLOYMENT, "ems").total_s, rel=0.05)
