"""The kv-affinity local prefix cache: EMS's rules, in process, on the local PCIe link."""

from prometheus_client import CollectorRegistry

from services.prefill.local_cache import LocalPrefixCache
from services.prefill.metrics import PrefillMetrics
from supernode.cache.hashing import block_keys
from supernode.cache.store import StoredBlock
from supernode.config import CacheConfig
from supernode.hardware import LOCAL_DRAM_LINK

BLOCK = 4


def make_cache(capacity_bytes: int = 10**9) -> LocalPrefixCache:
    metrics = PrefillMetrics(CollectorRegistry(), "m", "prefill-0")
    return LocalPrefixCache(CacheConfig(block_size=BLOCK), capacity_bytes, 10, 1.0, metrics)


async def test_a_stored_prompt_hits_its_full_blocks_but_not_the_last_token() -> None:
    """After a store, the same prompt hits every full block except one that would leave no
    token to compute; the hit is priced on the local PCIe link."""
    cache = make_cache()
    tokens = list(range(12))
    miss = await cache.fetch("ns", tokens)
    cache.store_later("ns", miss, len(tokens))
    await cache.flush()
    hit = await cache.fetch("ns", tokens)
    assert (miss.num_cached_tokens, hit.num_cached_tokens) == (0, 8)
    assert hit.num_bytes == 8 * 10 and cache.link is LOCAL_DRAM_LINK
    assert (await cache.fetch("other", tokens)).num_cached_tokens == 0


async def test_a_corrupt_block_ends_the_usable_prefix() -> None:
    """A block whose checksum does not match is a miss for itself and the rest of the prefix."""
    cache = make_cache()
    tokens = list(range(13))
    keys = block_keys(tokens, BLOCK, "ns")
    await cache.store.put("ns", [StoredBlock(keys[1], b"bad", crc32=0, true_num_bytes=40,
                                             num_tokens=BLOCK)])
    cache.store_later("ns", await cache.fetch("ns", tokens), len(tokens))
    await cache.flush()
    assert (await cache.fetch("ns", tokens)).num_cached_tokens == BLOCK
