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

import functools
import hashlib
import sys
from array import array
from collections.abc import Sequence

KEY_NUM_BYTES = 16
"""Length of a block key (128 bits of SHA-256)."""

_ROOT_DOMAIN = b"supernode.cache.v1\0"
_BIG_ENDIAN = sys.byteorder == "big"
_UINT32 = next(code for code in "IL" if array(code).itemsize == 4)
"""The array typecode of an unsigned 32-bit int (the packed token ids)."""
_MAX_TOKEN_ID = 2**32 - 1


@functools.lru_cache(maxsize=1024)
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
    try:
        packed = array(_UINT32, token_ids[:num_blocks * block_size])
    except OverflowError:
        bad = next(t for t in token_ids if not 0 <= t <= _MAX_TOKEN_ID)
        raise ValueError(f"token id {bad} is outside [0, 2**32)") from None
    if _BIG_ENDIAN:
        packed.byteswap()
    data, step = packed.tobytes(), 4 * block_size
    parent = root_key(namespace)
    keys: list[bytes] = []
    sha256 = hashlib.sha256
    for start in range(0, num_blocks * step, step):
        parent = sha256(parent + data[start:start + step]).digest()[:KEY_NUM_BYTES]
        keys.append(parent)
    return keys
