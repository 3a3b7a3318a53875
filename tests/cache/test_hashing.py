"""Chained block hashing: stable keys whose shared prefix is exactly the shared token prefix."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supernode.cache.hashing import KEY_NUM_BYTES, block_keys, root_key

token_lists = st.lists(st.integers(0, 2**32 - 1), max_size=40)


def test_golden_values() -> None:
    """Keys are pinned: every process and version computes the same keys for the same prompt."""
    assert root_key("deepseek-r1").hex() == "6bba30eeb72520f0f45b270d10c4508d"
    assert [k.hex() for k in block_keys(list(range(10)), 4, "deepseek-r1")] == [
        "f78f6751cdfb0916283addfaaeb55123",
        "6639f08ef5c90d117a1d3ecb0ed59eff",
    ]
    assert [k.hex() for k in block_keys([151643, 2**32 - 1, 0], 1, "")] == [
        "5add54204458e04a27025e17ad2a1c29",
        "320ee940a17dc8000af858fc09dc446f",
        "1126880d4da4c09a3a1d393ffc53065b",
    ]


def test_keys_follow_the_documented_formula() -> None:
    """key_i = SHA-256(key_{i-1} || uint32le tokens)[:16], key_-1 from the namespace."""
    parent = hashlib.sha256(b"supernode.cache.v1\0" + b"ns").digest()[:KEY_NUM_BYTES]
    expected = []
    for block in ([5, 6, 7], [8, 9, 10]):
        parent = hashlib.sha256(parent + struct.pack("<3I", *block)).digest()[:KEY_NUM_BYTES]
        expected.append(parent)
    assert block_keys([5, 6, 7, 8, 9, 10, 11], 3, "ns") == expected


@given(tokens=token_lists, block_size=st.integers(1, 8))
def test_only_full_blocks_get_keys(tokens: list[int], block_size: int) -> None:
    """A prompt of n tokens has n // block_size keys of KEY_NUM_BYTES bytes."""
    keys = block_keys(tokens, block_size, "m")
    assert len(keys) == len(tokens) // block_size
    assert all(len(k) == KEY_NUM_BYTES for k in keys)


@given(tokens=token_lists, cut=st.integers(0, 40), block_size=st.integers(1, 8))
def test_a_prompt_prefix_has_a_key_prefix(tokens: list[int], cut: int, block_size: int) -> None:
    """The keys of a prompt's prefix are a prefix of the prompt's keys."""
    full = block_keys(tokens, block_size, "m")
    part = block_keys(tokens[:cut], block_size, "m")
    assert full[: len(part)] == part


@given(
    tokens=st.lists(st.integers(0, 1000), min_size=16, max_size=16),
    position=st.integers(0, 15),
)
def test_changing_a_token_changes_its_block_and_every_later_key(
    tokens: list[int], position: int
) -> None:
    """Blocks before the change keep their keys; its block and all later ones get new keys."""
    changed = list(tokens)
    changed[position] += 1
    before, after = block_keys(tokens, 4, "m"), block_keys(changed, 4, "m")
    first_changed = position // 4
    assert before[:first_changed] == after[:first_changed]
    assert all(b != a for b, a in zip(before[first_changed:], after[first_changed:]))


def test_namespaces_give_disjoint_keys() -> None:
    """The same prompt in two namespaces shares no key."""
    tokens = list(range(64))
    assert not set(block_keys(tokens, 16, "tenant-a")) & set(block_keys(tokens, 16, "tenant-b"))


@pytest.mark.parametrize(("tokens", "block_size"), [([1, 2], 0), ([1, -1], 2), ([2**32, 1], 2)])
def test_bad_input_is_rejected(tokens: list[int], block_size: int) -> None:
    """block_size < 1 and token ids outside uint32 raise ValueError."""
    with pytest.raises(ValueError):
        block_keys(tokens, block_size, "m")
