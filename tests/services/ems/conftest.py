"""Fixtures: a real grpc.aio EMS server on 127.0.0.1, over each store backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import CollectorRegistry

from services.ems.servicer import EmsServicer, build_servicer
from supernode.v1 import supernode_pb2_grpc as pb_grpc
from tests.cache.redis_server import REDIS_SERVER, SKIP_REASON, RedisServer, free_port


@dataclass
class Ems:
    """A running EMS server and a client for it."""

    stub: pb_grpc.EmsServiceStub
    servicer: EmsServicer
    registry: CollectorRegistry

    def sample(self, name: str, **labels: str) -> float:
        """A metric's current value (0 if never set)."""
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="session")
def ems_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(free_port(), tmp_path_factory.mktemp("ems-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def start_ems() -> AsyncIterator[Callable[..., Awaitable[Ems]]]:
    """Starts EMS servers (build_servicer arguments as keywords); stops them after the test."""
    servers: list[tuple[grpc.aio.Server, grpc.aio.Channel, EmsServicer]] = []

    async def start(**kwargs: object) -> Ems:
        kwargs.setdefault("capacity_bytes", 10_000)
        kwargs.setdefault("key_prefix", f"test:{uuid.uuid4().hex}")
        registry = CollectorRegistry()
        servicer = build_servicer(registry=registry, **kwargs)
        server = grpc.aio.server()
        pb_grpc.add_EmsServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        servers.append((server, channel, servicer))
        return Ems(pb_grpc.EmsServiceStub(channel), servicer, registry)

    yield start
    for server, channel, servicer in servers:
        await channel.close()
        await server.stop(grace=None)
        await servicer.close()


@pytest.fixture(params=["memory", "redis"])
async def ems(request: pytest.FixtureRequest, start_ems: Callable[..., Awaitable[Ems]]) -> Ems:
    """An EMS server over each backend, 10,000 modelled bytes of capacity."""
    if request.param == "redis":
        url = request.getfixturevalue("ems_redis_server").url
        return await start_ems(backend="redis", redis_url=url)
    return await start_ems(backend="memory")
