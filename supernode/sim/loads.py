"""Model loads in virtual time, paced as the live EMS paces them.

Every load (an instance starting, or switching models) and every EMS prefetch is a stream
through its source's shared resource (`SharedResource`: the OBS bucket, the EMS pool's host
side; a node's DRAM is the instance's own), all sharing it max-min fairly and re-planned
whenever one starts or ends, exactly as services/ems/models.py paces them on EMS's clock. A
load is over its source's latency and the pipelined copy's tail after its stream
(`supernode.perf.load`). The source is the lifecycle's rule (`model_tiers.load_source`), taken
when the load starts; a load of an image EMS is prefetching waits for the prefetch, then reads
EMS.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

from supernode.cache.pacing import SharedResource
from supernode.config import ClusterConfig
from supernode.hardware.storage import load_storage
from supernode.lifecycle.model_tiers import ModelTiers, image_key, load_source
from supernode.perf import Deployment
from supernode.perf.load import LoadPlan, load_plan, prefetch_plan
from supernode.sim.kernel import Scheduled

_TIME_EPSILON_S = 1e-9


@dataclass(frozen=True, slots=True)
class LoadCheck:
    """The soonest stream end may have come (stale unless `epoch` is the latest)."""

    epoch: int


@dataclass(frozen=True, slots=True)
class LoadDone:
    """An instance's load is over: it may be ready."""

    worker_id: str
    source: str
    estimated_s: float
    """What the load was expected to take when it began (its sharing then)."""
    load_s: float


@dataclass(frozen=True, slots=True)
class PrefetchDone:
    """EMS holds the image `key` now."""

    key: str
    num_bytes: float


@dataclass
class _Stream:
    """A load (`worker_id` set) or an EMS prefetch of image `key`."""

    key: str
    plan: LoadPlan
    started_at: float
    estimated_s: float
    worker_id: str = ""
    deployment: Deployment | None = None
    version: str = ""


class SimLoads:
    """The loads and prefetches in flight; `handlers` give their events."""

    def __init__(self, config: ClusterConfig, tiers: ModelTiers) -> None:
        self.tiers = tiers
        self.plane = config.cache.plane
        self.block_bytes = config.model_load.block_bytes
        self._resources: dict[str, SharedResource] = {}
        self._streams: dict[str, _Stream] = {}
        self._after_prefetch: dict[str, list[tuple[str, Deployment, str]]] = {}
        self._epoch = 0
        self._ids = itertools.count()

    def handlers(self) -> dict[type, object]:
        return {LoadCheck: self.on_check, PrefetchDone: self.on_prefetched}

    def prefetch(self, d: Deployment, version: str, now: float) -> Iterator[Scheduled]:
        """EMS starts pulling the image of `d` from OBS (unless it holds or fetches it)."""
        key = image_key(d, version)
        if self.tiers.in_ems(key) or key in self._after_prefetch or not self.tiers.fits_ems(d):
            return
        self._after_prefetch[key] = []
        plan = prefetch_plan(d, load_storage(d.hardware.name))
        yield from self._add(_Stream(key, plan, now, 0.0), now)

    def start(self, worker_id: str, d: Deployment, version: str, now: float
              ) -> Iterator[Scheduled]:
        """`worker_id` starts loading the image of `d` at `version`."""
        key = image_key(d, version)
        if key in self._after_prefetch:
            self._after_prefetch[key].append((worker_id, d, version))
            return
        source = load_source(self.tiers.in_ems(key), self.tiers.in_dram(worker_id, key))
        plan = load_plan(d, source, load_storage(d.hardware.name), self.plane, self.block_bytes)
        yield from self._add(_Stream(key, plan, now, 0.0, worker_id, d, version), now)

    def on_check(self, now: float, event: LoadCheck) -> Iterator[Scheduled]:
        if event.epoch != self._epoch:
            return
        for stream_id, stream in list(self._streams.items()):
            resource = self._resources[stream.plan.resource]
            resource.advance(now)
            # A stream whose end is due now but holds a rounding residue of bytes ends too.
            if not (resource.finished(stream_id)
                    or resource.eta_s(stream_id, math.inf) <= now + _TIME_EPSILON_S):
                continue
            ended_at = resource.finished_at_s(stream_id) or now
            resource.remove(stream_id, now)
            del self._streams[stream_id]
            plan = stream.plan
            if stream.worker_id:
                load_s = ended_at - stream.started_at + plan.latency_s + plan.tail_s
                yield stream.started_at + load_s, LoadDone(stream.worker_id, plan.source,
                                                           stream.estimated_s, load_s)
            else:
                yield ended_at + plan.latency_s, PrefetchDone(stream.key, plan.stream_bytes)
        yield from self._reschedule(now)

    def on_prefetched(self, now: float, event: PrefetchDone) -> Iterator[Scheduled]:
        """The image is in EMS; the loads that waited for it read it from there."""
        self.tiers.put_ems(event.key, event.num_bytes)
        for worker_id, d, version in self._after_prefetch.pop(event.key, ()):
            plan = load_plan(d, "ems", load_storage(d.hardware.name), self.plane,
                             self.block_bytes)
            yield from self._add(_Stream(event.key, plan, now, 0.0, worker_id, d, version), now)

    def _add(self, stream: _Stream, now: float) -> Iterator[Scheduled]:
        plan = stream.plan
        resource = self._resources.get(plan.resource)
        if resource is None:
            resource = self._resources[plan.resource] = SharedResource(
                plan.resource, plan.resource_bytes_per_s)
        stream_id = f"{stream.worker_id or 'prefetch'}-{next(self._ids)}"
        resource.add(stream_id, plan.stream_bytes, plan.cap_bytes_per_s, now)
        stream.estimated_s = (resource.eta_s(stream_id, math.inf) - now + plan.latency_s
                              + plan.tail_s)
        self._streams[stream_id] = stream
        yield from self._reschedule(now)

    def _reschedule(self, now: float) -> Iterator[Scheduled]:
        """One check at the soonest stream end (earlier checks become stale)."""
        if not self._streams:
            return
        soonest = math.inf
        for stream_id, stream in self._streams.items():
            resource = self._resources[stream.plan.resource]
            resource.advance(now)
            soonest = min(soonest, resource.eta_s(stream_id, math.inf))
        self._epoch += 1
        yield max(now, soonest), LoadCheck(self._epoch)

