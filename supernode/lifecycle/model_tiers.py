"""Where each model image is, and so where a load reads it from.

The rule (`load_source`), the same for the live EMS and the simulator: the EMS pool if it holds
the image, else the instance's nodes' host DRAM if they hold a copy (the local DRAM cache:
`model_load.source: dram`), else OBS. An image is what one kind of instance loads
(`supernode.cache.models.model_key`: a model at a version, its quant, MTP layers or not).

`ModelTiers` keeps the state the rule reads:
- EMS: the images it holds, least recently loaded evicted first when a new one would exceed
  `cache.capacity_bytes` (an image larger than the pool is never cached); with
  `model_load.cache_in_ems`, every load leaves its image in EMS (a load from OBS or DRAM warms
  it as it goes, a load from EMS touches it);
- each instance's nodes' DRAM, with the local DRAM cache only: the last
  `model_load.dram_cache_models` images the instance loaded.
What a run starts with follows `model_load.source`: 'ems' seeds EMS with every served image,
'dram' puts each instance's first model in its nodes' DRAM, 'obs' and 'skip' nothing.

In the simulator this is the truth. Live, EMS holds the truth and picks the source itself (by
this rule); the scheduler keeps this view from what its workers report, for its estimate of a
switch and to tell an instance whether its nodes hold the model. Model blocks share the live
pool's capacity with KV blocks; this view gives models the whole capacity.
"""

from __future__ import annotations

from collections import OrderedDict

from supernode.cache.models import model_key
from supernode.config import ClusterConfig
from supernode.perf import Deployment
from supernode.perf.load import model_image

SOURCES = ("ems", "dram", "obs")


def load_source(in_ems: bool, in_dram: bool) -> str:
    """Where a load reads from: EMS if it holds the image, else the nodes' DRAM, else OBS."""
    return "ems" if in_ems else "dram" if in_dram else "obs"


def image_key(d: Deployment, version: str) -> str:
    """The key of the image an instance of `d` loads at `version`."""
    return model_key(d.model.name, version, d.quant, d.mtp_tokens > 0)


class ModelTiers:
    """Which images EMS and each instance's nodes' DRAM hold."""

    def __init__(self, config: ClusterConfig) -> None:
        load = config.model_load
        self.cache_in_ems = load.cache_in_ems
        self.local_dram = load.source == "dram"
        self.dram_cache_models = load.dram_cache_models
        self.capacity_bytes = config.cache.capacity_bytes
        self._ems: OrderedDict[str, float] = OrderedDict()  # key -> bytes, LRU first
        self._dram: dict[str, OrderedDict[str, None]] = {}

    def in_ems(self, key: str) -> bool:
        return key in self._ems

    def in_dram(self, worker_id: str, key: str) -> bool:
        return key in self._dram.get(worker_id, ())

    def source(self, worker_id: str, key: str) -> str:
        """Where `worker_id` would load `key` from now (`load_source`)."""
        return load_source(self.in_ems(key), self.in_dram(worker_id, key))

    def fits_ems(self, d: Deployment) -> bool:
        """Whether EMS may hold the image of `d` at all."""
        return self.cache_in_ems and model_image(d).model_bytes <= self.capacity_bytes

    def put_ems(self, key: str, num_bytes: float) -> None:
        """EMS holds `key` now (most recently used); older images leave while over capacity."""
        if not self.cache_in_ems or num_bytes > self.capacity_bytes:
            return
        self._ems.pop(key, None)
        self._ems[key] = num_bytes
        while sum(self._ems.values()) > self.capacity_bytes:
            self._ems.popitem(last=False)

    def put_dram(self, worker_id: str, key: str) -> None:
        """The instance's nodes hold `key` in host DRAM (with the local DRAM cache only)."""
        if not self.local_dram:
            return
        held = self._dram.setdefault(worker_id, OrderedDict())
        held.pop(key, None)
        held[key] = None
        while len(held) > self.dram_cache_models:
            held.popitem(last=False)

    def on_loaded(self, worker_id: str, d: Deployment, version: str) -> None:
        """An instance of `d` loaded its image: it is in EMS (warmed or read) and in the
        instance's nodes' DRAM, where those caches are on."""
        key = image_key(d, version)
        self.put_ems(key, model_image(d).model_bytes)
        self.put_dram(worker_id, key)
