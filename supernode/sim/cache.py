"""The prefix cache in the simulator: an LRU of block keys, sized in blocks.

It follows the live caches' rules (services.prefill.cache_client / local_cache): a lookup takes
the longest run of leading cached blocks, at most `(num_prompt_tokens - 1) // block_size` of
them (the last prompt token is always computed); after the prefill the prompt's full blocks are
stored; least recently used blocks leave first. Only keys are kept: the simulator moves no KV.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


def num_usable_blocks(num_prompt_tokens: int, block_size: int) -> int:
    """Full blocks a prompt may take from the cache (at least one token left to compute)."""
    return (num_prompt_tokens - 1) // block_size


class BlockLru:
    """Block keys in LRU order; `capacity_blocks` bounds how many are held."""

    def __init__(self, capacity_blocks: int) -> None:
        if capacity_blocks < 1:
            raise ValueError(f"capacity_blocks must be >= 1, got {capacity_blocks}")
        self.capacity_blocks = capacity_blocks
        self._keys: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, keys: Sequence[bytes], num_usable: int) -> int:
        """Leading blocks of `keys[:num_usable]` held here; each hit becomes most recent."""
        num_hits = 0
        for key in keys[:num_usable]:
            if key not in self._keys:
                break
            self._keys.move_to_end(key)
            num_hits += 1
        return num_hits

    def store(self, keys: Sequence[bytes]) -> None:
        """Hold `keys` as most recent, evicting the least recent beyond capacity."""
        for key in keys:
            self._keys[key] = None
            self._keys.move_to_end(key)
        while len(self._keys) > self.capacity_blocks:
            self._keys.popitem(last=False)
