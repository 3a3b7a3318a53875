"""Model weights as EMS blocks: versioned ids, manifests, block keys and synthetic payloads.

A model is cached as the unique weight bytes one kind of instance loads (its profile at a
version, its quant, with or without its MTP layers: `perf.load.model_image`), cut into blocks
of `block_bytes` (the last one shorter) and stored under block kind "model" in the namespace
named by its **model key**, ``<name>@<version>/<quant>`` (``+mtp`` when the MTP layers are
included). The **manifest** (JSON, kept by the store) records how the model was cut; block i's
key is ``SHA-256("supernode.model.v1\\0" || model key || "#" || i)[:16]``, so every process
derives the same keys. Payloads are sized like KV payloads (`payload.payload_num_bytes`: the
true size times the payload scale) while capacity is charged in true bytes.

A model is **cached** when every one of its blocks is present. The store evicts a chain's tail
first, and a load touches all of a model's blocks together, so eviction usually takes whole
models (calibration notes s7.3) and a partly evicted model reads as not cached.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

from supernode.cache.hashing import KEY_NUM_BYTES
from supernode.cache.payload import checksum, make_payload, payload_num_bytes
from supernode.cache.store import BlockStore, PutResult, StoredBlock
from supernode.config import MODEL_VERSION
from supernode.perf.deployment import Deployment
from supernode.perf.load import model_image

KIND = "model"
"""The block kind model blocks are stored under."""

_DOMAIN = b"supernode.model.v1\0"


def model_id(name: str, version: str) -> str:
    """The versioned id ``<name>@<version>``; ValueError on an empty or unsafe version."""
    if not MODEL_VERSION.match(version):
        raise ValueError(f"model version must match {MODEL_VERSION.pattern} (got {version!r})")
    return f"{name}@{version}"


def model_key(name: str, version: str, quant: str, with_mtp: bool) -> str:
    """The key of one cached image of a model: ``<id>/<quant>[+mtp]``."""
    return f"{model_id(name, version)}/{quant}{'+mtp' if with_mtp else ''}"


@dataclass(frozen=True)
class ModelManifest:
    """How one model image is cut into blocks (all sizes true, modelled bytes)."""

    model_key: str
    model_bytes: int
    block_bytes: int

    def __post_init__(self) -> None:
        if self.model_bytes < 1 or self.block_bytes < 1:
            raise ValueError("model_bytes and block_bytes must be >= 1")

    @property
    def num_blocks(self) -> int:
        return math.ceil(self.model_bytes / self.block_bytes)

    def block_true_bytes(self, index: int) -> int:
        """True size of block ``index`` (the last one holds the remainder)."""
        if not 0 <= index < self.num_blocks:
            raise IndexError(f"block {index} of {self.num_blocks}")
        return min(self.block_bytes, self.model_bytes - index * self.block_bytes)

    @functools.cached_property
    def keys(self) -> tuple[bytes, ...]:
        """The blocks' keys, in order."""
        prefix = _DOMAIN + self.model_key.encode("utf-8") + b"#"
        return tuple(hashlib.sha256(prefix + str(i).encode()).digest()[:KEY_NUM_BYTES]
                     for i in range(self.num_blocks))

    def block(self, index: int, payload_scale: float) -> StoredBlock:
        """Block ``index`` with its synthetic payload."""
        key = self.keys[index]
        true_num_bytes = self.block_true_bytes(index)
        payload = make_payload(key, payload_num_bytes(true_num_bytes, payload_scale))
        return StoredBlock(key, payload, checksum(payload), true_num_bytes, num_tokens=0)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        return cls(**json.loads(text))


def manifest_for(d: Deployment, version: str, block_bytes: int) -> ModelManifest:
    """The manifest of the image an instance of ``d`` loads, cut into ``block_bytes`` blocks."""
    key = model_key(d.model.name, version, d.quant, d.mtp_tokens > 0)
    return ModelManifest(key, round(model_image(d).model_bytes), block_bytes)


class ModelCatalog:
    """The model side of a `BlockStore`: manifests, whether a model is cached, its blocks."""

    def __init__(self, store: BlockStore, payload_scale: float) -> None:
        self.store = store
        self.payload_scale = payload_scale

    async def num_cached_blocks(self, manifest: ModelManifest) -> int:
        """Leading blocks of the model present (a lookup: it counts in the model-kind stats)."""
        return await self.store.lookup(manifest.model_key, manifest.keys, KIND)

    async def is_cached(self, manifest: ModelManifest) -> bool:
        return await self.num_cached_blocks(manifest) == manifest.num_blocks

    async def record(self, manifest: ModelManifest) -> None:
        """Keep the manifest beside the blocks (replacing an older cut of the same key)."""
        await self.store.put_manifest(manifest.model_key, manifest.to_json())

    async def manifest(self, key: str) -> ModelManifest | None:
        text = await self.store.get_manifest(key)
        return None if text is None else ModelManifest.from_json(text)

    async def store_blocks(self, manifest: ModelManifest, start: int, stop: int) -> PutResult:
        """Put blocks ``start`` .. ``stop - 1`` (payloads made here; duplicates dedup)."""
        blocks = [manifest.block(i, self.payload_scale) for i in range(start, stop)]
        return await self.store.put(manifest.model_key, blocks, KIND)

    def read(self, manifest: ModelManifest) -> AsyncIterator[StoredBlock | None]:
        """The model's blocks in order, leased while read (`BlockStore.get` rules)."""
        return self.store.get(manifest.model_key, manifest.keys, KIND)
