"""Model loading: how long an instance takes to get its weights into HBM, from each tier.

The shared-bandwidth rule: an instance pulls one *stream* of bytes through a shared resource
(the OBS bucket; the EMS pool's host side) at a rate capped by its own path (its nodes' VPC
share, its devices' links). Streams through one resource at the same time split it max-min
fairly (`fair_shares`): n identical loads from one 2.5 GB/s bucket get 2.5/n GB/s each, so 8
concurrent cold starts take 8 times one. A node's host DRAM is not shared between instances:
an instance smaller than a node gets its devices' share of the node (instances are packed).

What each source (`SOURCES`) streams (tiers: `supernode.hardware.storage`):

- ``obs``: the model's unique bytes at the deployment's quant (its checkpoint), once per
  instance, over its nodes' VPC into host DRAM; each device copies its share to HBM as the
  blocks arrive, so only the last block's copy is not hidden under the read (``overlap_s``).
- ``dram``: each device reads its resident bytes from its own node's host DRAM.
- ``ems``: each device reads its resident bytes from the EMS pool over ``ems_ub`` (or
  ``ems_vpc``); the pool holds one copy, so every reader shares the pool nodes' host side.

Resident bytes per device are the fullest device's (`memory.weight_bytes_per_die`); every
device is taken to hold as much, since the fullest sets the pace. All functions are pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from supernode.hardware.storage import StorageSpec, load_storage
from supernode.perf.deployment import Deployment
from supernode.perf.memory import weight_bytes_per_die
from supernode.perf.timing import Timing

SOURCES = ("obs", "dram", "ems")
"""Where an instance loads its weights from: object storage, its nodes' DRAM, the EMS pool."""
EMS_PLANES = ("ub", "vpc")
MODEL_BLOCK_BYTES = 1 << 30
"""Default size of one model block (an emulation choice: the paper does not give one)."""
_GB = 1e9


@dataclass(frozen=True)
class ModelImage:
    """What one instance of a deployment loads: the model's unique bytes at its quant (what
    OBS and EMS hold) and the bytes resident on its fullest device."""

    model_bytes: float
    bytes_per_device: float
    num_devices: int

    @property
    def instance_bytes(self) -> float:
        """Bytes written into the instance's HBM in all (replicated weights counted per copy)."""
        return self.bytes_per_device * self.num_devices


def model_image(d: Deployment) -> ModelImage:
    """The deployment's weights: unique bytes (the whole model on one rank: every expert once,
    attention unsplit, MTP layers if the deployment runs MTP) and per-device bytes."""
    whole = d.replace(num_devices=1, dp=d.hardware.num_dies_per_device, tp=1, ep=1,
                      num_redundant_experts=None, num_shared_ranks=None, strict_memory=False)
    return ModelImage(weight_bytes_per_die(whole),
                      weight_bytes_per_die(d) * d.hardware.num_dies_per_device, d.num_devices)


@dataclass(frozen=True)
class LoadPlan:
    """One instance's load from one source, before contention is known.

    The instance streams ``stream_bytes`` through ``resource`` (capacity
    ``resource_bytes_per_s``, shared by every stream through it; ``inf`` when not shared)
    at most at ``cap_bytes_per_s`` (set by ``cap_reason``). ``latency_s`` comes first;
    ``device_s`` is the device-side copy pipelined under the stream, of which ``tail_s``
    (one block's copy) is not hidden.
    """

    source: str
    resource: str
    resource_bytes_per_s: float
    stream_bytes: float
    cap_bytes_per_s: float
    cap_reason: str
    latency_s: float
    image: ModelImage
    device_s: float = 0.0
    tail_s: float = 0.0

    @property
    def part(self) -> str:
        """The breakdown name of the stream."""
        return f"{self.source}_read"


def fair_shares(capacity_bytes_per_s: float, caps: Sequence[float]) -> tuple[float, ...]:
    """Max-min fair rates of streams sharing ``capacity_bytes_per_s``, each at most its cap:
    the smallest caps are met first and what they leave is split evenly among the rest."""
    if not capacity_bytes_per_s > 0:
        raise ValueError(f"capacity must be > 0 (got {capacity_bytes_per_s})")
    shares = [0.0] * len(caps)
    remaining, left = capacity_bytes_per_s, len(caps)
    for i in sorted(range(len(caps)), key=lambda j: caps[j]):
        if not caps[i] > 0:
            raise ValueError(f"every cap must be > 0 (got {caps[i]})")
        shares[i] = min(caps[i], remaining / left)
        remaining -= shares[i]
        left -= 1
    return tuple(shares)


def load_plan(d: Deployment, source: str, storage: StorageSpec | None = None,
              plane: str = "ub", block_bytes: float = MODEL_BLOCK_BYTES) -> LoadPlan:
    """How an instance of ``d`` loads from ``source`` (one of `SOURCES`); ``plane`` is the
    EMS plane, ``block_bytes`` the model block size (it sets the pipelined copy's tail)."""
    storage = storage or load_storage(d.hardware.name)
    image = model_image(d)
    if source == "obs":
        return _obs_plan(d, storage, image, block_bytes)
    if source == "dram":
        rate, reason = _host_rate(d, storage)
        return LoadPlan("dram", "node_dram", math.inf, image.instance_bytes,
                        rate * d.num_devices, reason, storage.host_to_device.latency_s, image)
    if source == "ems":
        return _ems_plan(d, storage, image, plane)
    raise ValueError(f"unknown load source {source!r}; expected one of {SOURCES}")


def prefetch_plan(d: Deployment, storage: StorageSpec | None = None) -> LoadPlan:
    """EMS pulling the model's unique bytes from OBS into its pool (no instance involved):
    through the bucket, at most at the pool nodes' VPC bandwidth."""
    storage = storage or load_storage(d.hardware.name)
    image = model_image(d)
    vpc = d.hardware.node_link("vpc").effective_bandwidth_bytes_per_s
    return LoadPlan("obs", "obs_bucket", storage.obs_bucket.effective_bandwidth_bytes_per_s,
                    image.model_bytes, storage.ems_pool_num_nodes * vpc,
                    f"the VPC of {storage.ems_pool_num_nodes} EMS pool nodes",
                    storage.obs_bucket.latency_s, image)


def plan_time(plan: LoadPlan, num_instances: int = 1) -> Timing:
    """``plan`` carried out by ``num_instances`` identical instances starting at once."""
    if num_instances < 1:
        raise ValueError(f"num_instances must be >= 1 (got {num_instances})")
    rate = fair_shares(plan.resource_bytes_per_s, [plan.cap_bytes_per_s] * num_instances)[0]
    stream_s = plan.stream_bytes / rate
    breakdown = {"latency": plan.latency_s, plan.part: stream_s}
    bounds = {"latency": "fixed", plan.part: "network"}
    if plan.device_s:
        breakdown["host_to_device"] = plan.device_s
        bounds["host_to_device"] = "network"
    if rate < plan.cap_bytes_per_s:
        note = (f"{plan.part}: {num_instances} instance(s) share the {plan.resource} "
                f"({plan.resource_bytes_per_s / _GB:.4g} GB/s): {rate / _GB:.4g} GB/s each")
    else:
        note = (f"{plan.part}: {rate / _GB:.4g} GB/s into the instance, bound by "
                f"{plan.cap_reason}")
    return Timing(total_s=plan.latency_s + stream_s + plan.tail_s, breakdown=breakdown,
                  bounds=bounds, overlap_s=plan.device_s - plan.tail_s, notes=(note,))


def load_time(d: Deployment, source: str, num_instances: int = 1,
              storage: StorageSpec | None = None, plane: str = "ub") -> Timing:
    """``num_instances`` instances of ``d`` loading from ``source`` at once: each one's time."""
    return plan_time(load_plan(d, source, storage, plane), num_instances)


def _host_rate(d: Deployment, storage: StorageSpec) -> tuple[float, str]:
    """Per-device rate from the device's own node's DRAM: its host link, or its share of the
    node's DRAM side when all the node's devices copy at once."""
    link = storage.host_to_device.effective_bandwidth_bytes_per_s
    node_share = storage.host_node_bandwidth_bytes_per_s / d.hardware.num_devices_per_node
    if link <= node_share:
        return link, f"each device's host link ({link / _GB:.4g} GB/s)"
    return node_share, f"each device's share of its node's DRAM side ({node_share / _GB:.4g} GB/s)"


def _obs_plan(d: Deployment, storage: StorageSpec, image: ModelImage,
              block_bytes: float) -> LoadPlan:
    vpc = d.hardware.node_link("vpc").effective_bandwidth_bytes_per_s
    node_share = d.num_devices / d.hardware.num_devices_per_node
    rate, host_reason = _host_rate(d, storage)
    device_s = image.bytes_per_device / rate
    # The devices cannot take the checkpoint faster than they copy their share of it.
    absorb = image.model_bytes / device_s
    cap, reason = min((node_share * vpc, f"the instance's VPC ({node_share:.3g} node(s))"),
                      (absorb, f"the copy into HBM: {host_reason}"))
    num_blocks = max(1, math.ceil(image.model_bytes / block_bytes))
    return LoadPlan("obs", "obs_bucket", storage.obs_bucket.effective_bandwidth_bytes_per_s,
                    image.model_bytes, cap, reason,
                    storage.obs_bucket.latency_s + storage.host_to_device.latency_s, image,
                    device_s=device_s, tail_s=device_s / num_blocks)


def _ems_plan(d: Deployment, storage: StorageSpec, image: ModelImage, plane: str) -> LoadPlan:
    if plane not in EMS_PLANES:
        raise ValueError(f"unknown EMS plane {plane!r}; expected one of {EMS_PLANES}")
    hw = d.hardware
    link = hw.link(f"ems_{plane}")
    node_share = (hw.node_link(f"ems_{plane}").effective_bandwidth_bytes_per_s
                  / hw.num_devices_per_node)
    rate = min(link.effective_bandwidth_bytes_per_s, node_share)
    reason = (f"each device's ems_{plane} link ({rate / _GB:.4g} GB/s)"
              if rate == link.effective_bandwidth_bytes_per_s
              else f"each device's share of its node's ems_{plane} ({rate / _GB:.4g} GB/s)")
    if plane == "ub":
        pool = storage.ems_pool_host_bandwidth_bytes_per_s
    else:
        pool = storage.ems_pool_num_nodes * hw.node_link("ems_vpc").effective_bandwidth_bytes_per_s
    return LoadPlan("ems", f"ems_pool_{plane}", pool, image.instance_bytes,
                    rate * d.num_devices, reason, link.latency_s, image)


@dataclass(frozen=True)
class StartTimes:
    """``num_instances`` instances starting at once with one cache choice: ``cold`` when the
    model is in no cache yet, ``warm`` when the cache holds it."""

    cache: str
    num_instances: int
    cold: Timing
    warm: Timing


def start_times(d: Deployment, cache: str, num_instances: int = 1,
                storage: StorageSpec | None = None, plane: str = "ub") -> StartTimes:
    """Cold and warm start of ``num_instances`` instances of ``d`` with ``cache``:

    - ``obs`` (no cache): every start reads OBS, cold and warm alike;
    - ``dram`` (a copy in each node's DRAM): cold reads OBS (filling the nodes' DRAM on the
      way); warm reads the nodes' DRAM;
    - ``ems``: cold prefetches the model once from OBS into EMS, then every instance reads EMS;
      warm reads EMS.
    """
    if cache not in SOURCES:
        raise ValueError(f"unknown cache {cache!r}; expected one of {SOURCES}")
    obs = plan_time(load_plan(d, "obs", storage), num_instances)
    if cache == "obs":
        note = "no cache: a warm start reads OBS like a cold one"
        warm = Timing(obs.total_s, obs.breakdown, obs.bounds, obs.overlap_s,
                      notes=(*obs.notes, note))
        return StartTimes(cache, num_instances, obs, warm)
    warm = plan_time(load_plan(d, cache, storage, plane), num_instances)
    if cache == "dram":
        return StartTimes(cache, num_instances, obs, warm)
    fetch = prefetch_plan(d, storage)
    prefetch = plan_time(fetch, 1)
    cold = Timing(prefetch.total_s + warm.total_s,
                  {"obs_prefetch": prefetch.total_s, **warm.breakdown},
                  {"obs_prefetch": "network", **warm.bounds}, warm.overlap_s,
                  notes=(f"obs_prefetch: EMS reads the model ({fetch.stream_bytes / _GB:.4g} GB) "
                         "from OBS once, then every instance reads EMS",
                         *prefetch.notes, *warm.notes))
    return StartTimes(cache, num_instances, cold, warm)


def switch_time(d: Deployment, source: str, storage: StorageSpec | None = None,
                plane: str = "ub", num_instances: int = 1) -> Timing:
    """One instance of ``d`` switching to another model of the same shape that ``source``
    holds: unload the old weights, then load the new ones (``num_instances`` switching at
    once share the source as loads do)."""
    load = load_time(d, source, num_instances, storage, plane)
    return Timing(load.total_s, {"unload": 0.0, **load.breakdown},
                  {"unload": "fixed", **load.bounds}, load.overlap_s,
                  notes=("unload: freeing the old weights' HBM is taken as instant "
                         "(no published figure)", *load.notes))

