"""Chained block hashes: the keys of a prompt's KV blocks, so a lookup is a longest-prefix match.

A prompt of token ids is cut into blocks of `block_size` tokens; only full blocks get a key (a
trailing partial block has no reusable KV of its own). Block i's key is

    key_i = SHA-256(key_{i-1} || uint32le(token ids of block i))[:KEY_NUM_BYTES]
    key_-1 = SHA-256(b"supernode.cache.v1\\0" || utf8(namespace))[:KEY_NUM_BYTES]

so a key stands for the whole prefix up to and including its block: two prompts share key i
exactly when they share their first (i + 1) * block_size tokens, in the same namespace. The
function is the one place this scheme lives; the scheduler, the workers and EMS all call it, and
the golden values in tests/cache/test_hashing.py pin it across processes and versions.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

KEY_NUM_BYTES = 16
"""Length of a block key (128 bits of SHA-256)."""

_ROOT_DOMAIN = b"supernode.cache.v1\0"
_MAX_TOKEN_ID = 2**32 - 1


def root_key(namespace: str) -> bytes:
    """The chain's seed for `namespace`: the parent of block 0's key."""
    return hashlib.sha256(_ROOT_DOMAIN + namespace.encode("utf-8")).digest()[:KEY_NUM_BYTES]


def block_keys(token_ids: Sequence[int], block_size: int, namespace: str) -> list[bytes]:
    """Keys of the full blocks of `token_ids`, in prompt order (len(token_ids) // block_size keys).

    Raises ValueError if `block_size` < 1 or a token id is outside [0, 2**32).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    num_blocks = len(token_ids) // block_size
    block_format = struct.Struct(f"<{block_size}I")
    parent = root_key(namespace)
    keys: list[bytes] = []
    for start in range(0, num_blocks * block_size, block_size):
        block = token_ids[start : start + block_size]
        try:
            packed = block_format.pack(*block)
        except struct.error as exc:
            bad = next(t for t in block if not 0 <= t <= _MAX_TOKEN_ID)
            raise ValueError(f"token id {bad} is outside [0, 2**32)") from exc
        parent = hashlib.sha256(parent + packed).digest()[:KEY_NUM_BYTES]
        keys.append(parent)
    return keys
