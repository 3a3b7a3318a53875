"""Fixtures: a session redis-server, and `make_store` parametrised over every backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from supernode.cache.backends import StoreConfig, make_store
from supernode.cache.store import BlockStore
from tests.cache.redis_server import REDIS_SERVER, SKIP_REASON, RedisServer, free_port

BACKENDS = ["memory", "redis"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


StoreFactory = Callable[..., BlockStore]


@pytest.fixture
async def store_factory(
    backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[StoreFactory]:
    """Builds stores of this test's backend; Redis ones share a key prefix unique to the test."""
    redis_url = request.getfixturevalue("redis_server").url if backend == "redis" else None
    key_prefix = f"test:{uuid.uuid4().hex}"
    stores: list[BlockStore] = []

    def factory(capacity_bytes: int = 10_000, **kwargs: object) -> BlockStore:
        kwargs.setdefault("key_prefix", key_prefix)
        config = StoreConfig(
            backend=backend, capacity_bytes=capacity_bytes, redis_url=redis_url, **kwargs
        )
        store = make_store(config)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        await store.close()
