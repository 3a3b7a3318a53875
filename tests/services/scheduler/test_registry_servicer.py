"""The registry over real gRPC: the cluster token, takeover refusal, lease-bound heartbeats,
and a Registrar that registers, heartbeats and says why it was refused."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import CollectorRegistry

from services.common.grpc_server import GrpcServer, insecure_channel, start_grpc_server
from services.common.registration import Registrar
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.registry_servicer import RegistryServicer, peer_host
from services.scheduler.token_streams import TokenStreams
from supernode.engine.registry import WorkerKind, WorkerRegistry
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

TOKEN = "cluster-token-for-tests"
LEASE_S = 1.5


@dataclass
class Scheduler:
    server: GrpcServer
    registry: WorkerRegistry
    prometheus: CollectorRegistry
    address: str
    servicer: RegistryServicer


@pytest.fixture
async def scheduler() -> AsyncIterator[Scheduler]:
    registry = WorkerRegistry(lease_s=LEASE_S)
    prometheus = CollectorRegistry()
    metrics = SchedulerMetrics(prometheus, "m", 4096)
    streams = TokenStreams("test")
    servicer = RegistryServicer(registry, streams, metrics, heartbeat_interval_s=0.1)
    server = await start_grpc_server(
        [lambda s: pb_grpc.add_RegistryServiceServicer_to_server(servicer, s)],
        "127.0.0.1", 0, cluster_token=TOKEN)
    yield Scheduler(server, registry, prometheus, f"127.0.0.1:{server.port}", servicer)
    await server.stop(0)
    await streams.close()


def registration(worker_id: str, address: str) -> pb.RegisterRequest:
    return pb.RegisterRequest(worker_id=worker_id, kind=pb.WORKER_KIND_PREFILL, address=address)


async def register(address: str, request: pb.RegisterRequest,
                   token: str | None = TOKEN) -> pb.RegisterResponse:
    async with insecure_channel(address, token) as channel:
        return await pb_grpc.RegistryServiceStub(channel).Register(request, timeout=5)


async def heartbeat(address: str, worker_id: str, lease_token: str) -> bool:
    async with insecure_channel(address, TOKEN) as channel:
        reply = await pb_grpc.RegistryServiceStub(channel).Heartbeat(
            pb.HeartbeatRequest(worker_id=worker_id, lease_token=lease_token), timeout=5)
    return reply.known


async def until(condition, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_register_without_the_token_is_refused(scheduler: Scheduler) -> None:
    """No token or a wrong one: UNAUTHENTICATED, and the registry stays empty."""
    for token in (None, "not-the-token"):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await register(scheduler.address, registration("prefill-0", "10.0.0.1:1"), token)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert scheduler.registry.all() == []


async def test_a_live_worker_id_cannot_be_taken_over(scheduler: Scheduler) -> None:
    """A Register for a live worker's id from another address is refused even with the token;
    the entry keeps its address, and the refusal is counted."""
    await register(scheduler.address, registration("prefill-0", "10.0.0.1:1"))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await register(scheduler.address, registration("prefill-0", "10.0.0.66:1"))
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "held by a live worker" in (e.value.details() or "")
    assert scheduler.registry.get("prefill-0").address == "10.0.0.1:1"
    assert scheduler.prometheus.get_sample_value("supernode_registrations_refused_total") == 1


async def test_same_address_may_register_again_and_gets_a_new_lease(
        scheduler: Scheduler) -> None:
    """The worker itself reconnecting (same address, same host) registers again; the new
    lease token replaces the old one, whose heartbeats are no longer known."""
    first = await register(scheduler.address, registration("decode-x", "10.0.0.1:1"))
    second = await register(scheduler.address, registration("decode-x", "10.0.0.1:1"))
    assert first.lease_token and second.lease_token != first.lease_token
    assert await heartbeat(scheduler.address, "decode-x", second.lease_token)
    assert not await heartbeat(scheduler.address, "decode-x", first.lease_token)


async def test_the_id_frees_once_the_lease_lapses(scheduler: Scheduler) -> None:
    """After its holder stops heartbeating for a lease, another address may take the id."""
    await register(scheduler.address, registration("prefill-1", "10.0.0.1:1"))
    await asyncio.sleep(LEASE_S + 0.1)  # the lease running out is what is tested
    await register(scheduler.address, registration("prefill-1", "10.0.0.2:1"))
    assert scheduler.registry.get("prefill-1").address == "10.0.0.2:1"


async def test_heartbeats_renew_only_with_the_lease_token(scheduler: Scheduler) -> None:
    """A heartbeat with a wrong or missing lease token is answered `known = false` and does
    not renew the lease: nobody else can keep a dead worker's entry alive."""
    reply = await register(scheduler.address, registration("prefill-2", "10.0.0.1:1"))
    registered_at = scheduler.registry.get("prefill-2").last_seen_s
    assert not await heartbeat(scheduler.address, "prefill-2", "forged")
    assert not await heartbeat(scheduler.address, "prefill-2", "")
    assert scheduler.registry.get("prefill-2").last_seen_s == registered_at
    assert await heartbeat(scheduler.address, "prefill-2", reply.lease_token)
    assert scheduler.registry.get("prefill-2").last_seen_s > registered_at


async def test_registrar_registers_and_keeps_its_lease(scheduler: Scheduler) -> None:
    """A Registrar with the token registers and keeps the entry alive past several leases."""
    registrar = Registrar(scheduler.address, registration("decode-r", "10.0.0.9:1"), pb.Load,
                          cluster_token=TOKEN)
    registrar.start()
    try:
        await asyncio.wait_for(registrar.registered.wait(), 10)
        await asyncio.sleep(2 * LEASE_S)  # two leases pass: only heartbeats keep it alive
        assert scheduler.registry.holder("decode-r", time.monotonic()) is not None
    finally:
        await registrar.stop()


async def test_registrar_with_a_wrong_token_logs_why(scheduler: Scheduler,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A worker whose token is not the scheduler's is never registered and logs the refusal
    as an error naming UNAUTHENTICATED."""
    registrar = Registrar(scheduler.address, registration("decode-w", "10.0.0.9:2"), pb.Load,
                          cluster_token="wrong")
    with caplog.at_level(logging.ERROR, logger="services.common.registration"):
        registrar.start()
        try:
            await until(lambda: any("UNAUTHENTICATED" in r.getMessage() for r in caplog.records))
        finally:
            await registrar.stop()
    assert scheduler.registry.get("decode-w") is None


@pytest.mark.parametrize("peer,host", [
    ("ipv4:10.0.0.7:5123", "10.0.0.7"), ("ipv6:[::1]:5123", "::1"),
    ("ipv6:%5B::1%5D:5123", "::1"), ("unix:/tmp/s", "unix:/tmp/s"),
])
def test_peer_host(peer: str, host: str) -> None:
    """The host part of grpc's peer strings, IPv6 brackets (escaped or not) removed."""
    assert peer_host(peer) == host


async def deregister(address: str, worker_id: str, worker_address: str, lease_token: str,
                     drain: bool) -> bool:
    async with insecure_channel(address, TOKEN) as channel:
        reply = await pb_grpc.RegistryServiceStub(channel).Deregister(pb.DeregisterRequest(
            worker_id=worker_id, address=worker_address, drain=drain, lease_token=lease_token),
            timeout=5)
    return reply.found


@pytest.mark.parametrize("drain", [True, False])
async def test_deregister_needs_the_lease_token_and_address(scheduler: Scheduler,
                                                            drain: bool) -> None:
    """Even with the cluster token, a Deregister with a forged, empty or superseded lease
    token, or another address, is answered `found = false` and leaves the worker routed; only
    the current registration's token (and address) drains or removes it."""
    first = await register(scheduler.address, registration("prefill-d", "10.0.0.1:1"))
    reply = await register(scheduler.address, registration("prefill-d", "10.0.0.1:1"))
    for token, address in (("forged", "10.0.0.1:1"), ("", "10.0.0.1:1"),
                           (first.lease_token, "10.0.0.1:1"), (reply.lease_token, "10.0.0.2:1")):
        assert not await deregister(scheduler.address, "prefill-d", address, token, drain)
    live = scheduler.registry.live
    assert [w.worker_id for w in live(WorkerKind.PREFILL)] == ["prefill-d"]
    assert await deregister(scheduler.address, "prefill-d", "10.0.0.1:1", reply.lease_token,
                            drain)
    assert live(WorkerKind.PREFILL) == []
    if drain:  # still known and heartbeating with its lease while it drains
        assert scheduler.registry.get("prefill-d").draining
        assert await heartbeat(scheduler.address, "prefill-d", reply.lease_token)
    else:  # gone, lease and all
        assert scheduler.registry.get("prefill-d") is None
        assert not await heartbeat(scheduler.address, "prefill-d", reply.lease_token)


async def test_registrar_drains_then_leaves(scheduler: Scheduler) -> None:
    """`drain` takes the worker out of routing while its heartbeats keep the lease; `leave`
    removes it at once (no wait for the lease)."""
    registrar = Registrar(scheduler.address, registration("prefill-l", "10.0.0.9:3"), pb.Load,
                          cluster_token=TOKEN)
    registrar.start()
    try:
        await asyncio.wait_for(registrar.registered.wait(), 10)
        assert await registrar.drain()
        assert scheduler.registry.live(WorkerKind.PREFILL) == []
        await asyncio.sleep(2 * LEASE_S)  # two leases pass: only heartbeats keep it known
        assert scheduler.registry.holder("prefill-l", time.monotonic()).draining
        await registrar.leave()
        assert scheduler.registry.get("prefill-l") is None
    finally:
        await registrar.stop()


async def test_a_registrar_switching_models_registers_again_and_the_lifecycle_hears(
        scheduler: Scheduler) -> None:
    """The worker's model rides on its registration and heartbeats; `switch_model` registers
    again at once (loading, with the new shape and capacity), and a ready heartbeat with the
    new model ends the scheduler's switch. Every change reaches `on_change`."""
    changes: list[str] = []
    scheduler.servicer.on_change = changes.append
    request = registration("decode-s", "10.0.0.9:4")
    request.model, request.capacity.kv_capacity_tokens = "A", 100
    registrar = Registrar(scheduler.address, request, pb.Load, cluster_token=TOKEN)
    registrar.start()
    try:
        await asyncio.wait_for(registrar.registered.wait(), 10)
        assert scheduler.registry.get("decode-s").model == "A" and changes == ["decode-s"]
        scheduler.registry.begin_switch("decode-s", "B")
        registrar.switch_model("B", pb.InstanceShape(model="deepseek-r1"),
                               pb.Capacity(kv_capacity_tokens=200),
                               pb.ModelLoadStatus(model_id="deepseek-r1@v2"))
        await until(lambda: scheduler.registry.get("decode-s").model == "B")
        info = scheduler.registry.get("decode-s")
        assert (info.state.value, info.kv_capacity_tokens, info.switching_to) == (
            "loading", 200, "B")
        registrar.set_state(pb.WORKER_STATE_READY)
        await until(lambda: scheduler.registry.get("decode-s").state.value == "ready")
        assert scheduler.registry.get("decode-s").switching_to == ""
        assert changes.count("decode-s") >= 3
    finally:
        await registrar.stop()
