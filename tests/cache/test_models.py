"""Model blocks: versioned keys, manifests, and the catalog over every store backend."""

import contextlib

import pytest

from supernode.cache.models import ModelCatalog, ModelManifest, manifest_for, model_id, model_key
from supernode.cache.payload import checksum
from supernode.perf import Deployment
from supernode.perf.load import model_image


def test_ids_and_keys_carry_version_quant_and_mtp():
    """`<name>@<version>` ids; keys add the quant and whether the MTP layers are in."""
    assert model_id("deepseek-r1", "v1") == "deepseek-r1@v1"
    assert model_key("deepseek-r1", "v2", "int8", with_mtp=True) == "deepseek-r1@v2/int8+mtp"
    for bad in ("", "v/1", "@v1", "v 1"):
        with pytest.raises(ValueError, match="version"):
            model_id("deepseek-r1", bad)


def test_a_manifest_cuts_the_model_into_blocks_of_true_size():
    """Blocks are block_bytes each but the last; their sizes add up to the model."""
    m = ModelManifest("r1@v1/int8", model_bytes=10_500, block_bytes=1000)
    assert m.num_blocks == 11
    assert sum(m.block_true_bytes(i) for i in range(m.num_blocks)) == 10_500
    assert m.block_true_bytes(10) == 500
    assert len(set(m.keys)) == 11
    assert ModelManifest.from_json(m.to_json()) == m


def test_keys_depend_on_the_model_key_only():
    """Two processes derive the same keys; another version gets other keys."""
    a, b = ModelManifest("r1@v1/int8", 3000, 1000), ModelManifest("r1@v1/int8", 3000, 1000)
    assert a.keys == b.keys
    assert not set(a.keys) & set(ModelManifest("r1@v2/int8", 3000, 1000).keys)


def test_payloads_are_scaled_and_checksummed():
    """A block's payload is its true size times the payload scale, with its crc32."""
    block = ModelManifest("r1@v1/int8", 10**6, 10**5).block(3, payload_scale=1e-3)
    assert block.true_num_bytes == 10**5 and len(block.payload) == 100
    assert block.crc32 == checksum(block.payload) and block.key == \
        ModelManifest("r1@v1/int8", 10**6, 10**5).keys[3]


def test_manifest_for_a_deployment():
    """A deployment's manifest holds its unique weight bytes under its quant and MTP key."""
    d = Deployment.build("ascend-910c", "deepseek-r1", 16, ep=32, mtp_tokens=1)
    m = manifest_for(d, "v3", 1 << 30)
    assert m.model_key == "deepseek-r1@v3/int8+mtp"
    assert m.model_bytes == round(model_image(d).model_bytes)


async def test_a_model_is_cached_only_when_every_block_is_there(store_factory):
    """is_cached needs all blocks; blocks read back in order; manifests round-trip."""
    catalog = ModelCatalog(store_factory(capacity_bytes=10_000), payload_scale=0.01)
    m = ModelManifest("r1@v1/int8", 3_500, 1000)
    assert not await catalog.is_cached(m) and await catalog.manifest(m.model_key) is None
    await catalog.record(m)
    assert await catalog.manifest(m.model_key) == m
    await catalog.store_blocks(m, 0, 2)
    assert await catalog.num_cached_blocks(m) == 2 and not await catalog.is_cached(m)
    result = await catalog.store_blocks(m, 1, 4)
    assert (result.num_stored, result.num_deduplicated) == (2, 1)
    assert await catalog.is_cached(m)
    async with contextlib.aclosing(catalog.read(m)) as blocks:
        read = [b async for b in blocks]
    assert [b.key for b in read] == list(m.keys)
    assert [b.true_num_bytes for b in read] == [1000, 1000, 1000, 500]
    stats = await catalog.store.stats(kind="model")
    assert (stats.num_blocks, stats.used_bytes) == (4, 3_500)
