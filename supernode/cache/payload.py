"""Synthetic KV payloads: deterministic bytes standing in for a block's real KV, with a checksum.

A payload is `payload_num_bytes(true_num_bytes, payload_scale)` bytes long: the modelled KV
size times the payload scale (so an emulated 1 TB pool can live in 100 MB). Its content is a
function of the block key alone, so any process can rebuild and compare it, and a block sent to
the wrong key is caught by comparing payloads, while a corrupted one is caught by its checksum.
Modelled transfer times always use the true size, never the payload size.
"""

from __future__ import annotations

import hashlib
import zlib


def make_payload(key: bytes, num_bytes: int) -> bytes:
    """`num_bytes` deterministic bytes derived from `key`: its SHA-256 digest repeated.

    Cheap for megabytes (one hash, then a bytes repeat). Raises ValueError if num_bytes < 0.
    """
    if num_bytes < 0:
        raise ValueError(f"num_bytes must be >= 0, got {num_bytes}")
    digest = hashlib.sha256(key).digest()
    num_whole, num_rest = divmod(num_bytes, len(digest))
    return digest * num_whole + digest[:num_rest]


def checksum(payload: bytes) -> int:
    """CRC-32 of `payload` as an unsigned 32-bit int (zlib.crc32; the proto's `crc32` fields)."""
    return zlib.crc32(payload) & 0xFFFFFFFF


def payload_num_bytes(true_num_bytes: int, payload_scale: float) -> int:
    """Bytes actually carried for a block whose modelled KV size is `true_num_bytes`.

    round(true_num_bytes * payload_scale), but at least 1 byte when both are positive, so a
    scaled-down block still carries a checksummed payload. payload_scale 0 means "sizes only":
    0 bytes. Raises ValueError on a negative size or scale.
    """
    if true_num_bytes < 0:
        raise ValueError(f"true_num_bytes must be >= 0, got {true_num_bytes}")
    if payload_scale < 0:
        raise ValueError(f"payload_scale must be >= 0, got {payload_scale}")
    if true_num_bytes == 0 or payload_scale == 0:
        return 0
    return max(1, round(true_num_bytes * payload_scale))
