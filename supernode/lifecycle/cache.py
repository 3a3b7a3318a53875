"""The prefix cache's rules in the request lifecycle, for the live workers and the simulator.

- Namespace: `cache_namespace(model, tenant)`; the same prompt in two namespaces shares nothing.
- Lookup: the longest run of leading cached blocks, at most `num_usable_blocks` of them (the
  last prompt token is always computed: its logits are needed to sample).
- After the prefill: the prompt's full blocks that were not hits are stored (`keys_to_store`).
- When a request ends (only with `cache.store_decode_kv`, off for reasoning models as in the
  paper s4.4.2): the full blocks of prompt + output beyond the prompt's own
  (`decode_blocks_to_store`), shared-EMS designs only (kv-affinity's decode DRAM is a silo).
"""

from __future__ import annotations

from collections.abc import Sequence

from supernode.config import ClusterConfig
from supernode.policy.kv_affinity import uses_local_cache

__all__ = ["cache_namespace", "cache_source", "decode_blocks_to_store", "keys_to_store", "num_usable_blocks",
           "stores_decode_kv", "uses_local_cache"]


def cache_namespace(model_name: str, tenant: str = "") -> str:
    """The EMS namespace of a model and tenant."""
    return f"{model_name}/{tenant}"


def num_usable_blocks(num_prompt_tokens: int, block_size: int) -> int:
    """Full blocks a prompt may take from the cache (at least one token is left to compute)."""
    return max(0, (num_prompt_tokens - 1) // block_size)


def keys_to_store(keys: Sequence[bytes], num_cached_blocks: int, num_prompt_tokens: int,
                  block_size: int) -> Sequence[bytes]:
    """The prompt's full blocks past its cached prefix (what the prefill stores afterwards)."""
    return keys[num_cached_blocks:num_prompt_tokens // block_size]


def cache_source(config: ClusterConfig) -> str:
    """Where prefill reads cached prefixes from: its own DRAM under kv-affinity, else the EMS
    pool over the configured plane (`supernode.perf.CACHE_SOURCES`)."""
    if uses_local_cache(config.routing_policy):
        return "local_dram"
    return f"ems_{config.cache.plane}"


def stores_decode_kv(config: ClusterConfig) -> bool:
    """Whether finished requests' decode-generated blocks go to the shared EMS."""
    cache = config.cache
    return cache.enabled and cache.store_decode_kv and not uses_local_cache(config.routing_policy)


def decode_blocks_to_store(num_prompt_tokens: int, num_output_tokens: int,
                           block_size: int) -> range:
    """Block indices of prompt + output whose KV decode produced and the prompt's blocks do not
    cover. Only tokens whose KV exists count: the last sampled token has none yet."""
    first = num_prompt_tokens // block_size
    last = (num_prompt_tokens + max(0, num_output_tokens - 1)) // block_size
    return range(first, last)
