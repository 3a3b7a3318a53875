"""Synthetic payloads: exact size, deterministic per key, and checksummed."""

from __future__ import annotations

import zlib

import pytest

from supernode.cache.payload import checksum, make_payload, payload_num_bytes


@pytest.mark.parametrize("num_bytes", [0, 1, 31, 32, 33, 1000, 3 * 2**20 + 7])
def test_payload_has_the_requested_size(num_bytes: int) -> None:
    """make_payload returns exactly num_bytes bytes, megabytes included."""
    assert len(make_payload(b"k", num_bytes)) == num_bytes


def test_payload_is_a_function_of_the_key() -> None:
    """The same key gives the same bytes; another key gives other bytes."""
    assert make_payload(b"a", 100) == make_payload(b"a", 100)
    assert make_payload(b"a", 100) != make_payload(b"b", 100)
    assert make_payload(b"a", 100)[:40] == make_payload(b"a", 40)


def test_checksum_is_unsigned_crc32_and_catches_a_flipped_bit() -> None:
    """checksum == zlib.crc32, and one flipped bit changes it."""
    payload = make_payload(b"k", 4096)
    assert checksum(payload) == zlib.crc32(payload) & 0xFFFFFFFF
    corrupted = bytearray(payload)
    corrupted[1234] ^= 0x10
    assert checksum(bytes(corrupted)) != checksum(payload)


@pytest.mark.parametrize(
    ("true_num_bytes", "scale", "expected"),
    [
        (1000, 0.01, 10),
        (1000, 1.0, 1000),
        (1000, 2.5, 2500),
        (10, 0.001, 1),
        (0, 1.0, 0),
        (10, 0, 0),
    ],
)
def test_payload_num_bytes_scales_the_true_size(
    true_num_bytes: int, scale: float, expected: int
) -> None:
    """round(true x scale), at least 1 byte when both are positive, 0 when either is 0."""
    assert payload_num_bytes(true_num_bytes, scale) == expected


@pytest.mark.parametrize(("true_num_bytes", "scale"), [(-1, 1.0), (1, -0.5)])
def test_negative_sizes_and_scales_are_rejected(true_num_bytes: int, scale: float) -> None:
    """A negative size or scale raises ValueError."""
    with pytest.raises(ValueError):
        payload_num_bytes(true_num_bytes, scale)
    with pytest.raises(ValueError):
        make_payload(b"k", -1)
