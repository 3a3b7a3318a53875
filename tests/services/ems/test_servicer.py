"""EMS over real gRPC: lookups, streamed reads, verified writes, metrics, backend failure."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from supernode.cache.hashing import block_keys
from supernode.cache.payload import checksum, make_payload
from supernode.v1 import supernode_pb2 as pb
from tests.cache.redis_server import REDIS_SERVER, SKIP_REASON, RedisServer, free_port
from tests.services.ems.conftest import Ems

TIMEOUT_S = 5.0
BLOCK_BYTES = 1000


def kv_block(namespace: str, key: bytes, true_num_bytes: int = BLOCK_BYTES) -> pb.KvBlock:
    payload = make_payload(key, true_num_bytes // 10)
    return pb.KvBlock(
        namespace=namespace,
        key=key,
        payload=payload,
        crc32=checksum(payload),
        true_num_bytes=true_num_bytes,
        num_tokens=16,
    )


def prompt_keys(num_blocks: int, namespace: str = "m") -> list[bytes]:
    return block_keys(list(range(16 * num_blocks)), 16, namespace)


async def put(ems: Ems, blocks: list[pb.KvBlock], plane: str = "ub") -> pb.PutResponse:
    return await ems.stub.Put(
        iter(blocks), timeout=TIMEOUT_S, metadata=(("x-supernode-plane", plane),)
    )


async def get(ems: Ems, namespace: str, keys: list[bytes], plane: str | None = None) -> list:
    metadata = (("x-supernode-plane", plane),) if plane else None
    call = ems.stub.Get(
        pb.GetRequest(namespace=namespace, block_keys=keys), timeout=TIMEOUT_S, metadata=metadata
    )
    return [message async for message in call]


async def lookup(ems: Ems, namespace: str, keys: list[bytes]) -> int:
    request = pb.LookupRequest(namespace=namespace, block_keys=keys)
    return (await ems.stub.Lookup(request, timeout=TIMEOUT_S)).num_hit_blocks


async def test_put_lookup_get_round_trip(ems: Ems) -> None:
    """Stored blocks come back byte for byte with valid checksums; reads are counted per plane."""
    keys = prompt_keys(3)
    sent = [kv_block("m", key) for key in keys]
    response = await put(ems, sent, plane="vpc")
    assert (response.num_stored, response.num_deduplicated, response.num_rejected) == (3, 0, 0)
    assert await lookup(ems, "m", keys) == 3
    received = await get(ems, "m", keys, plane="vpc")
    assert [m.payload for m in received] == [m.payload for m in sent]
    assert all(m.found and checksum(m.payload) == m.crc32 for m in received)
    assert [(m.key, m.true_num_bytes, m.num_tokens) for m in received] == [
        (m.key, m.true_num_bytes, m.num_tokens) for m in sent
    ]
    await get(ems, "m", keys[:1])
    await ems.servicer.refresh_gauges()
    assert ems.sample("supernode_ems_read_bytes_total", plane="vpc") == 3 * BLOCK_BYTES
    assert ems.sample("supernode_ems_read_bytes_total", plane="ub") == BLOCK_BYTES
    assert ems.sample("supernode_ems_read_tokens_total", plane="vpc") == 48
    assert ems.sample("supernode_ems_written_bytes_total", plane="vpc") == 3 * BLOCK_BYTES
    assert ems.sample("supernode_ems_used_bytes", namespace="m") == 3 * BLOCK_BYTES


async def test_a_block_with_a_bad_checksum_is_rejected_and_counted(ems: Ems) -> None:
    """Put verifies crc32: a corrupted block is not stored, the others are, and it is counted."""
    keys = prompt_keys(3)
    blocks = [kv_block("m", key) for key in keys]
    blocks[1].crc32 ^= 1
    response = await put(ems, blocks)
    assert (response.num_stored, response.num_rejected) == (2, 1)
    assert await lookup(ems, "m", keys) == 1
    assert await lookup(ems, "m", keys[2:]) == 1
    assert ems.sample("supernode_ems_checksum_rejections_total") == 1
    assert ems.sample("supernode_ems_put_blocks_total", result="bad_checksum") == 1


async def test_get_marks_the_first_missing_block_and_ends_there(ems: Ems) -> None:
    """Get streams the leading hits, then one found=False for the first missing key, and stops."""
    keys = prompt_keys(4)
    await put(ems, [kv_block("m", keys[0]), kv_block("m", keys[1]), kv_block("m", keys[3])])
    received = await get(ems, "m", keys)
    assert [(m.key, m.found) for m in received] == [
        (keys[0], True),
        (keys[1], True),
        (keys[2], False),
    ]
    assert received[2].payload == b""
    assert [m.found for m in await get(ems, "other", keys)] == [False]
    assert ems.sample("supernode_ems_get_missed_blocks_total") == 2


async def test_lookup_counts_hits_and_stats_report_the_pool(ems: Ems) -> None:
    """Lookup returns leading hits; Stats and the hit counters agree with what was done."""
    keys = prompt_keys(4)
    await put(ems, [kv_block("m", k) for k in keys[:2]])
    assert (await put(ems, [kv_block("m", keys[0])])).num_deduplicated == 1
    assert await lookup(ems, "m", keys) == 2
    stats = await ems.stub.Stats(pb.StatsRequest(namespace="m"), timeout=TIMEOUT_S)
    assert (stats.num_blocks, stats.used_bytes, stats.num_lookups) == (2, 2 * BLOCK_BYTES, 1)
    assert (stats.num_queried_blocks, stats.num_hit_blocks) == (4, 2)
    assert stats.backend in ("memory", "redis")
    assert (await ems.stub.Stats(pb.StatsRequest(), timeout=TIMEOUT_S)).capacity_bytes == 10_000
    assert ems.sample("supernode_ems_hit_blocks_total", namespace="m") == 2
    await ems.servicer.refresh_gauges()
    assert ems.sample("supernode_ems_queried_blocks_total", namespace="m") == 4
    assert ems.sample("supernode_ems_hit_ratio") == 0.5
    assert ems.sample("supernode_ems_capacity_bytes") == 10_000
    assert ems.sample("supernode_ems_namespace_capacity_bytes") == 10_000


async def test_eviction_under_capacity_is_counted(ems: Ems) -> None:
    """Puts beyond the 10-block capacity evict LRU blocks, and the evictions metric says how many."""
    keys = prompt_keys(12)
    for key in keys:
        await put(ems, [kv_block("m", key)])
    assert await lookup(ems, "m", keys[:2]) == 0
    assert await lookup(ems, "m", keys[2:]) == 10
    assert ems.sample("supernode_ems_evictions_total") == 2
    await ems.servicer.refresh_gauges()
    assert ems.sample("supernode_ems_blocks") == 10


async def test_bad_arguments_are_invalid_argument(ems: Ems) -> None:
    """An unknown plane or an empty namespace is INVALID_ARGUMENT; a malformed Put block is rejected."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get(ems, "m", prompt_keys(1), plane="carrier-pigeon")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await lookup(ems, "", prompt_keys(1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    response = await put(ems, [kv_block("", b"k"), kv_block("m", b"k", true_num_bytes=0)])
    assert (response.num_stored, response.num_rejected) == (0, 2)


async def test_a_cancelled_get_releases_its_lease(start_ems) -> None:
    """A reader that cancels mid-stream releases its lease, so its blocks can be evicted again.

    The 20 blocks carry 1 MB payloads each, so the server cannot finish the stream (and drop the
    lease) before the client reads it: HTTP/2 flow control holds it back.
    """
    num_blocks, true_num_bytes = 20, 10 * 2**20
    ems = await start_ems(backend="memory", capacity_bytes=num_blocks * true_num_bytes)
    keys = prompt_keys(num_blocks + 1)
    await put(ems, [kv_block("m", k, true_num_bytes) for k in keys[:num_blocks]])
    request = pb.GetRequest(namespace="m", block_keys=keys[:num_blocks])
    call = ems.stub.Get(request, timeout=TIMEOUT_S)
    assert (await call.read()).found
    extra = [kv_block("m", keys[num_blocks], true_num_bytes)]
    assert (await put(ems, extra)).num_rejected == 1
    call.cancel()
    for _ in range(200):
        if (await put(ems, extra)).num_stored == 1:
            break
        await asyncio.sleep(0.01)
    assert await lookup(ems, "m", keys[num_blocks:]) == 1


async def test_redis_down_is_unavailable_then_recovers(start_ems, tmp_path) -> None:
    """With Redis stopped, calls fail UNAVAILABLE (counted, backend_up 0); restarted, EMS recovers."""
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        ems = await start_ems(backend="redis", redis_url=server.url)
        keys = prompt_keys(2)
        await put(ems, [kv_block("m", k) for k in keys])
        assert await lookup(ems, "m", keys) == 2
        server.stop()
        for call in (lookup(ems, "m", keys), get(ems, "m", keys), put(ems, [kv_block("m", b"x")])):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "EMS backend redis unavailable" in caught.value.details()
        assert ems.sample("supernode_ems_backend_errors_total", rpc="Lookup") == 1
        assert ems.sample("supernode_ems_backend_up") == 0
        assert not ems.servicer.backend_available
        server.start()
        assert await lookup(ems, "m", keys) == 0  # a fresh Redis: the pool starts empty
        assert (await put(ems, [kv_block("m", k) for k in keys])).num_stored == 2
        assert await lookup(ems, "m", keys) == 2
        await ems.servicer.refresh_gauges()
        assert ems.sample("supernode_ems_backend_up") == 1
        assert ems.sample("supernode_ems_used_bytes", namespace="m") == 2 * BLOCK_BYTES
        assert ems.servicer.backend_available
    finally:
        server.stop()
