"""Redis-only rules: replicas share one pool atomically, and behave exactly like the memory store."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernode.cache.backends import StoreConfig, make_store
from supernode.cache.memory_store import MemoryBlockStore
from supernode.cache.redis_store import RedisBlockStore, connect
from supernode.cache.store import BlockStore, StoreUnavailable
from tests.cache.redis_server import RedisServer, free_port
from tests.cache.test_store import BLOCK_BYTES, keys, make_block


def redis_store(server: RedisServer, prefix: str, capacity_bytes: int, **kwargs) -> BlockStore:
    return make_store(
        StoreConfig(
            backend="redis",
            capacity_bytes=capacity_bytes,
            redis_url=server.url,
            key_prefix=prefix,
            **kwargs,
        )
    )


async def test_replicas_with_one_prefix_share_one_pool(redis_server: RedisServer) -> None:
    """Two stores on the same Redis and prefix see each other's blocks, LRU and capacity."""
    prefix = f"test:{uuid.uuid4().hex}"
    one = redis_store(redis_server, prefix, 2 * BLOCK_BYTES)
    two = redis_store(redis_server, prefix, 2 * BLOCK_BYTES)
    other = redis_store(redis_server, f"{prefix}:other", 2 * BLOCK_BYTES)
    try:
        await one.put("m", [make_block("a")])
        await two.put("m", [make_block("b")])
        assert await two.lookup("m", keys("a", "b")) == 2
        assert await other.lookup("m", keys("a")) == 0
        await one.put("m", [make_block("c")])  # a, touched by two's lookup, is not the LRU
        assert await two.lookup("m", keys("a")) == 1
        assert await two.lookup("m", keys("b")) == 0
        assert (await one.stats()).num_blocks == (await two.stats()).num_blocks == 2
    finally:
        for store in (one, two, other):
            await store.close()


async def test_concurrent_puts_from_replicas_never_overfill_the_pool(
    redis_server: RedisServer,
) -> None:
    """Many puts racing from two replicas leave used bytes within capacity and consistent."""
    prefix = f"test:{uuid.uuid4().hex}"
    replicas = [redis_store(redis_server, prefix, 10 * BLOCK_BYTES) for _ in range(2)]
    try:
        puts = [
            replicas[i % 2].put(f"ns{i % 3}", [make_block(f"b{i}-{j}") for j in range(3)])
            for i in range(40)
        ]
        results = await asyncio.gather(*puts)
        stats = await replicas[0].stats()
        assert stats.used_bytes == stats.num_blocks * BLOCK_BYTES == 10 * BLOCK_BYTES
        assert sum(r.num_stored for r in results) - stats.num_evictions == stats.num_blocks
        assert sum((await replicas[1].used_bytes_by_namespace()).values()) == stats.used_bytes
    finally:
        for store in replicas:
            await store.close()


async def test_an_unreachable_redis_raises_store_unavailable() -> None:
    """Every operation on a Redis that is not there fails fast with StoreUnavailable."""
    store = RedisBlockStore(connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5), 1000)
    try:
        with pytest.raises(StoreUnavailable, match="redis backend failed"):
            await store.lookup("m", keys("a"))
        with pytest.raises(StoreUnavailable):
            await store.put("m", [make_block("a")])
        with pytest.raises(StoreUnavailable):
            async with contextlib.aclosing(store.get("m", keys("a"))) as reader:
                await anext(reader)
        with pytest.raises(StoreUnavailable):
            await store.stats()
    finally:
        await store.close()


names = st.lists(st.sampled_from("abcdefgh"), min_size=0, max_size=5)
operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "lookup", "get"]),
        st.sampled_from(["m", "n"]),
        names,
        st.sampled_from([BLOCK_BYTES, 2 * BLOCK_BYTES]),
    ),
    max_size=25,
)


@settings(max_examples=25, deadline=None)
@given(ops=operations)
def test_redis_behaves_exactly_like_memory(redis_server: RedisServer, ops: list) -> None:
    """Any sequence of puts, lookups and gets gives identical answers and stats on both backends."""

    async def run(store: BlockStore) -> list:
        answers = []
        for op, namespace, block_names, size in ops:
            if op == "put":
                answers.append(
                    await store.put(namespace, [make_block(n, size) for n in block_names])
                )
            elif op == "lookup":
                answers.append(await store.lookup(namespace, keys(*block_names)))
            else:
                async with contextlib.aclosing(store.get(namespace, keys(*block_names))) as reader:
                    answers.append([block async for block in reader])
        answers.append([await store.stats(ns) for ns in (None, "m", "n")])
        await store.close()
        return answers

    capacity = {"capacity_bytes": 7 * BLOCK_BYTES, "namespace_capacity_bytes": 5 * BLOCK_BYTES}
    expected = asyncio.run(run(MemoryBlockStore(**capacity)))
    actual = asyncio.run(run(redis_store(redis_server, f"test:{uuid.uuid4().hex}", **capacity)))
    expected[-1] = [dataclasses.replace(stats, backend="redis") for stats in expected[-1]]
    assert actual == expected
