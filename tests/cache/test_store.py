"""BlockStore rules, run against every backend (memory and a real Redis) with the same cases."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from supernode.cache.payload import checksum, make_payload
from supernode.cache.store import BlockStore, StoredBlock

BLOCK_BYTES = 100
"""Modelled size of every test block: capacities below are counted in these."""


def make_block(name: str, true_num_bytes: int = BLOCK_BYTES) -> StoredBlock:
    key = name.encode()
    payload = make_payload(key, true_num_bytes // 4)
    return StoredBlock(key, payload, checksum(payload), true_num_bytes, num_tokens=16)


def keys(*names: str) -> list[bytes]:
    return [name.encode() for name in names]


async def read_all(store: BlockStore, namespace: str, names: list[bytes], kind: str = "kv") -> list:
    async with contextlib.aclosing(store.get(namespace, names, kind)) as blocks:
        return [block async for block in blocks]


async def present(store: BlockStore, namespace: str, *names: str) -> list[str]:
    """The names among `names` stored in `namespace` (one-key lookups)."""
    return [n for n in names if await store.lookup(namespace, keys(n)) == 1]


async def test_lookup_counts_leading_hits_and_stops_at_the_first_miss(store_factory) -> None:
    """lookup returns the number of leading keys present; a key after a gap does not count."""
    store = store_factory()
    assert await store.lookup("m", keys("a", "b")) == 0
    await store.put("m", [make_block(n) for n in "abcd"])
    assert await store.lookup("m", keys("a", "b", "c", "d")) == 4
    assert await store.lookup("m", keys("a", "b", "x", "d")) == 2
    assert await store.lookup("m", keys("x", "a")) == 0
    assert await store.lookup("m", []) == 0


async def test_get_yields_the_stored_blocks_then_one_none_at_the_first_miss(store_factory) -> None:
    """get returns the blocks as stored, in order; a miss yields None once and ends the stream."""
    store = store_factory()
    blocks = [make_block(n) for n in "abc"]
    await store.put("m", blocks)
    assert await read_all(store, "m", keys("a", "b", "c")) == blocks
    assert await read_all(store, "m", keys("a", "x", "c")) == [blocks[0], None]
    assert await read_all(store, "other", keys("a")) == [None]


async def test_identical_blocks_are_stored_once(store_factory) -> None:
    """Putting a key already present stores nothing new and counts it as deduplicated."""
    store = store_factory()
    first = await store.put("m", [make_block("a"), make_block("b")])
    again = await store.put("m", [make_block("b"), make_block("a"), make_block("c")])
    assert (first.num_stored, first.num_deduplicated) == (2, 0)
    assert (again.num_stored, again.num_deduplicated, again.num_rejected) == (1, 2, 0)
    stats = await store.stats("m")
    assert (stats.num_blocks, stats.used_bytes) == (3, 3 * BLOCK_BYTES)
    assert stats.payload_bytes == 3 * (BLOCK_BYTES // 4)


async def test_pool_capacity_evicts_the_least_recently_used_block(store_factory) -> None:
    """Over capacity, the block touched least recently (by put, lookup or get) goes first."""
    store = store_factory(capacity_bytes=3 * BLOCK_BYTES)
    for name in "abc":
        await store.put("m", [make_block(name)])
    assert await store.lookup("m", keys("a")) == 1  # b is now the least recent
    result = await store.put("m", [make_block("d")])
    assert (result.num_stored, result.num_evicted) == (1, 1)
    assert await present(store, "m", *"abcd") == ["a", "c", "d"]
    await read_all(store, "m", keys("c"))  # a is now the least recent
    await store.put("m", [make_block("e")])
    assert await present(store, "m", *"acde") == ["c", "d", "e"]
    assert (await store.stats()).num_evictions == 2


async def test_a_chains_tail_is_evicted_before_its_head(store_factory) -> None:
    """Within one call, earlier blocks count as more recent, so eviction eats a chain from the end."""
    store = store_factory(capacity_bytes=4 * BLOCK_BYTES)
    await store.put("m", [make_block(n) for n in "abcd"])
    await store.put("m", [make_block("x")])
    assert await store.lookup("m", keys("a", "b", "c", "d")) == 3
    await store.lookup("m", keys("a", "b", "c"))  # recency, oldest first: x c b a
    await store.put("m", [make_block("y")])
    await store.put("m", [make_block("z")])
    assert await present(store, "m", *"abcxyz") == ["a", "b", "y", "z"]


async def test_a_put_never_evicts_its_own_blocks(store_factory) -> None:
    """A chain longer than the pool keeps its head: the blocks that do not fit are rejected."""
    store = store_factory(capacity_bytes=2 * BLOCK_BYTES)
    result = await store.put("m", [make_block(n) for n in "abc"])
    assert (result.num_stored, result.num_rejected, result.num_evicted) == (2, 1, 0)
    assert await store.lookup("m", keys("a", "b", "c")) == 2


async def test_namespace_capacity_evicts_within_the_namespace(store_factory) -> None:
    """A namespace over its own limit evicts its own LRU block, not an older one elsewhere."""
    store = store_factory(capacity_bytes=10 * BLOCK_BYTES, namespace_capacity_bytes=2 * BLOCK_BYTES)
    await store.put("b", [make_block("b1")])
    for name in ("a1", "a2", "a3"):
        await store.put("a", [make_block(name)])
    assert await present(store, "a", "a1", "a2", "a3") == ["a2", "a3"]
    assert await present(store, "b", "b1") == ["b1"]
    assert ((await store.stats("a")).num_evictions, (await store.stats("b")).num_evictions) == (
        1,
        0,
    )
    assert (await store.stats("a")).capacity_bytes == 2 * BLOCK_BYTES
    assert (await store.stats()).capacity_bytes == 10 * BLOCK_BYTES
    assert (await store.stats()).namespace_capacity_bytes == 2 * BLOCK_BYTES


async def test_pool_capacity_evicts_across_namespaces(store_factory) -> None:
    """When the pool is full, the pool-wide LRU block goes, whichever namespace holds it."""
    store = store_factory(capacity_bytes=3 * BLOCK_BYTES)
    await store.put("a", [make_block("a1")])
    await store.put("b", [make_block("b1")])
    await store.put("a", [make_block("a2")])
    result = await store.put("b", [make_block("b2")])
    assert result.num_evicted == 1
    assert await present(store, "a", "a1", "a2") == ["a2"]
    assert (await store.stats("a")).num_evictions == 1
    assert await store.used_bytes_by_namespace() == {"a": BLOCK_BYTES, "b": 2 * BLOCK_BYTES}


async def test_a_block_larger_than_a_limit_is_rejected_without_evicting(store_factory) -> None:
    """A block that can never fit is rejected and leaves the store as it was."""
    store = store_factory(capacity_bytes=5 * BLOCK_BYTES, namespace_capacity_bytes=2 * BLOCK_BYTES)
    await store.put("m", [make_block("a"), make_block("b")])
    result = await store.put("m", [make_block("big", 3 * BLOCK_BYTES)])
    assert (result.num_stored, result.num_rejected, result.num_evicted) == (0, 1, 0)
    assert await store.lookup("m", keys("a", "b", "big")) == 2


async def test_namespaces_are_isolated(store_factory) -> None:
    """The same key in two namespaces is two blocks with their own bytes and counters."""
    store = store_factory()
    block_a = make_block("k")
    block_b = StoredBlock(b"k", b"other", checksum(b"other"), 300, 8)
    await store.put("a", [block_a])
    assert await store.lookup("b", keys("k")) == 0
    assert (await store.put("b", [block_b])).num_stored == 1
    assert await read_all(store, "a", keys("k")) == [block_a]
    assert await read_all(store, "b", keys("k")) == [block_b]
    assert (await store.stats("a")).used_bytes == BLOCK_BYTES
    assert (await store.stats("b")).used_bytes == 300
    assert (await store.stats()).num_blocks == 2


async def test_a_leased_block_is_not_evicted_even_when_least_recent(store_factory) -> None:
    """While a get is open, its blocks are skipped by eviction; the next LRU block goes instead."""
    store = store_factory(capacity_bytes=2 * BLOCK_BYTES)
    await store.put("m", [make_block("a"), make_block("b")])
    async with contextlib.aclosing(store.get("m", keys("a"))) as reader:
        assert await anext(reader) == make_block("a")
        await store.lookup("m", keys("b"))  # a is now the least recent, but leased
        await store.put("m", [make_block("c")])
        assert await present(store, "m", "a", "b", "c") == ["a", "c"]


async def test_a_put_that_only_leased_blocks_could_make_room_for_is_rejected(store_factory) -> None:
    """With every candidate leased, a put is rejected; once the reader closes, it succeeds."""
    store = store_factory(capacity_bytes=2 * BLOCK_BYTES)
    await store.put("m", [make_block("a"), make_block("b")])
    async with contextlib.aclosing(store.get("m", keys("a", "b"))) as reader:
        await anext(reader)
        assert (await store.put("m", [make_block("c")])).num_rejected == 1
    assert (await store.put("m", [make_block("c")])).num_stored == 1


async def test_a_lease_expires_when_never_released(store_factory) -> None:
    """A lease held past lease_s no longer protects the block (a reader that died)."""
    store = store_factory(capacity_bytes=BLOCK_BYTES, lease_s=0.05)
    await store.put("m", [make_block("a")])
    reader = store.get("m", keys("a"))
    await anext(reader)
    assert (await store.put("m", [make_block("b")])).num_rejected == 1
    await asyncio.sleep(0.12)
    assert (await store.put("m", [make_block("b")])).num_stored == 1
    await reader.aclose()
    assert await present(store, "m", "a", "b") == ["b"]


async def test_stats_count_lookups_queries_and_hits(store_factory) -> None:
    """Stats count lookups, queried and hit blocks (per namespace and pool-wide); get does not."""
    store = store_factory(capacity_bytes=1000)
    await store.put("m", [make_block("a"), make_block("b")])
    await store.lookup("m", keys("a", "b", "c"))
    await store.lookup("m", keys("x"))
    await store.lookup("n", keys("a"))
    await read_all(store, "m", keys("a"))
    stats = await store.stats("m")
    assert (stats.num_lookups, stats.num_queried_blocks, stats.num_hit_blocks) == (2, 4, 2)
    assert stats.hit_ratio == 0.5
    assert stats.backend == store.backend
    pool = await store.stats()
    assert (pool.num_lookups, pool.num_queried_blocks, pool.num_hit_blocks) == (3, 5, 2)
    assert (pool.num_blocks, pool.used_bytes, pool.capacity_bytes) == (2, 200, 1000)
    assert (await store.stats("never-used")).num_blocks == 0
    assert (await store.stats("never-used")).hit_ratio is None


async def test_kinds_are_separate_sets_of_namespaces(store_factory) -> None:
    """The same namespace and key as a KV block and as a model block are two blocks."""
    store = store_factory(capacity_bytes=1000)
    await store.put("m", [make_block("a")])
    assert await store.lookup("m", keys("a"), kind="model") == 0
    model_block = make_block("a", 2 * BLOCK_BYTES)
    assert (await store.put("m", [model_block], kind="model")).num_stored == 1
    assert await read_all(store, "m", keys("a"), kind="model") == [model_block]
    assert (await read_all(store, "m", keys("a")))[0].true_num_bytes == BLOCK_BYTES


async def test_stats_are_kept_per_kind(store_factory) -> None:
    """Blocks, bytes, lookups and hits of each kind add up to the pool's."""
    store = store_factory(capacity_bytes=1000)
    await store.put("t/1", [make_block("a"), make_block("b")])
    await store.put("r1@v1", [make_block("w0", 300)], kind="model")
    await store.lookup("t/1", keys("a", "x"))
    await store.lookup("r1@v1", keys("w0", "w1"), kind="model")
    kv, model, pool = (await store.stats(kind="kv"), await store.stats(kind="model"),
                       await store.stats())
    assert (kv.num_blocks, kv.used_bytes, kv.num_hit_blocks) == (2, 200, 1)
    assert (model.num_blocks, model.used_bytes, model.num_queried_blocks) == (1, 300, 2)
    assert pool.num_blocks == 3 and pool.used_bytes == 500 and pool.num_lookups == 2
    assert (await store.stats("r1@v1", kind="model")).used_bytes == 300
    assert await store.used_bytes_by_namespace() == {"t/1": 200}
    assert await store.used_bytes_by_namespace("model") == {"r1@v1": 300}


async def test_model_and_kv_blocks_share_one_capacity_and_lru(store_factory) -> None:
    """A model block evicts the least recent KV blocks to fit, and KV evicts a stale model."""
    store = store_factory(capacity_bytes=4 * BLOCK_BYTES)
    await store.put("t", [make_block(n) for n in "abc"])
    await store.lookup("t", keys("c", "a"))  # b is the least recent
    result = await store.put("r1@v1", [make_block("w0", 2 * BLOCK_BYTES)], kind="model")
    assert (result.num_stored, result.num_evicted) == (1, 1)
    assert await present(store, "t", *"abc") == ["a", "c"]  # the model block is least recent
    assert (await store.put("t", [make_block("d")])).num_evicted == 1
    assert await store.lookup("r1@v1", keys("w0"), kind="model") == 0
    assert await present(store, "t", *"acd") == ["a", "c", "d"]
    assert (await store.stats(kind="model")).num_evictions == 1


async def test_the_namespace_limit_is_for_kv_only(store_factory) -> None:
    """A tenant's namespace limit does not cap a model: the pool does."""
    store = store_factory(capacity_bytes=10 * BLOCK_BYTES, namespace_capacity_bytes=BLOCK_BYTES)
    assert (await store.put("t", [make_block("a", 2 * BLOCK_BYTES)])).num_rejected == 1
    blocks = [make_block(f"w{i}", 2 * BLOCK_BYTES) for i in range(4)]
    assert (await store.put("r1@v1", blocks, kind="model")).num_stored == 4
    assert (await store.stats("r1@v1", kind="model")).capacity_bytes == 10 * BLOCK_BYTES
    too_big = make_block("w9", 11 * BLOCK_BYTES)
    assert (await store.put("r1@v1", [too_big], kind="model")).num_rejected == 1


async def test_manifests_are_metadata_beside_the_blocks(store_factory) -> None:
    """Manifests are kept by model key, replaced on rewrite, and take no capacity."""
    store = store_factory(capacity_bytes=BLOCK_BYTES)
    assert await store.get_manifest("r1@v1/int8") is None
    await store.put_manifest("r1@v1/int8", '{"num_blocks": 3}')
    await store.put_manifest("r1@v1/int8", '{"num_blocks": 4}')
    await store.put_manifest("r1@v2/int8", "{}")
    assert await store.get_manifest("r1@v1/int8") == '{"num_blocks": 4}'
    assert await store.manifests() == {"r1@v1/int8": '{"num_blocks": 4}', "r1@v2/int8": "{}"}
    assert (await store.stats()).used_bytes == 0


async def test_an_unknown_kind_is_named(store_factory) -> None:
    """A kind outside BLOCK_KINDS raises ValueError naming it."""
    store = store_factory()
    with pytest.raises(ValueError, match="lora"):
        await store.lookup("m", keys("a"), kind="lora")
    with pytest.raises(ValueError, match="lora"):
        await store.put("m", [make_block("a")], kind="lora")
