"""Device and link specifications: plain frozen data, loaded from profile files.

Conventions (every quantity is a spec-sheet or measured figure, never a fitted one):
- compute and HBM figures are **per die** (an Ascend 910C package has 2 dies; a GPU has 1);
- link figures are **per device** (package/GPU), unidirectional; ``die_link`` divides them
  over the dies and ``node_link`` gives the per-node figure;
- a ``Link``'s ``efficiency`` is the achievable fraction of its nominal bandwidth for bulk
  transfers (measured where the calibration notes give a measurement).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

#: The plane roles every profile defines. ``ub`` is the scale-up plane (UB on CloudMatrix,
#: NVLink on GPUs), ``rdma`` the scale-out plane, ``vpc`` the front-end/storage network,
#: ``ems_ub`` and ``ems_vpc`` an NPU's reach into the pooled host DRAM over UB or VPC.
PLANES = ("ub", "rdma", "vpc", "ems_ub", "ems_vpc")
#: How an expert-parallel all-to-all reaches its peers (``EpPaths``): ``scale_up`` sends every
#: token-expert pair over the scale-up plane (UB reaches all 384 NPUs); ``scale_out`` sends every
#: pair over the scale-out NICs, even to peers in the same node (DeepEP's low-latency kernels);
#: ``hierarchical`` crosses the scale-out plane once per destination node and fans out over the
#: scale-up plane inside it (DeepEP's normal kernels with node-limited routing).
EP_PATHS = ("scale_up", "scale_out", "hierarchical")


@dataclass(frozen=True)
class Link:
    """One network path as seen by one endpoint.

    ``bandwidth_bytes_per_s`` is nominal unidirectional bandwidth, ``latency_s`` the
    one-message start-up latency, ``efficiency`` in (0, 1] the achievable fraction of nominal
    bandwidth. A transfer of ``n`` bytes takes ``latency_s + n / (bandwidth * efficiency)``.
    """

    name: str
    bandwidth_bytes_per_s: float
    latency_s: float
    efficiency: float = 1.0
    write_efficiency: float | None = None
    """Achievable fraction for remote writes (pushes), where it differs from reads."""

    def __post_init__(self) -> None:
        if not self.bandwidth_bytes_per_s > 0:
            raise ValueError(f"link {self.name}: bandwidth_bytes_per_s must be > 0")
        if self.latency_s < 0:
            raise ValueError(f"link {self.name}: latency_s must be >= 0")
        for name in ("efficiency", "write_efficiency"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise ValueError(f"link {self.name}: {name} must be in (0, 1]")

    @property
    def effective_bandwidth_bytes_per_s(self) -> float:
        """Bandwidth actually achieved for bulk transfers."""
        return self.bandwidth_bytes_per_s * self.efficiency

    @property
    def effective_write_bytes_per_s(self) -> float:
        """Bandwidth achieved by bulk remote writes (all-to-all pushes)."""
        return self.bandwidth_bytes_per_s * (self.write_efficiency or self.efficiency)

    def scaled(self, factor: float, name: str | None = None) -> Link:
        """The same link with its bandwidth multiplied by ``factor`` (latency unchanged)."""
        return replace(self, name=name or self.name,
                       bandwidth_bytes_per_s=self.bandwidth_bytes_per_s * factor)


@dataclass(frozen=True)
class OpCosts:
    """Fixed start-up cost of one launched kernel, by kind (seconds)."""

    matmul_s: float
    vector_s: float
    comm_s: float


@dataclass(frozen=True)
class EpPaths:
    """How the expert-parallel all-to-all of each phase travels (``EP_PATHS``), and its cost.

    ``decode``: the latency-optimised kernels of decode (small per-token messages);
    ``prefill``: the throughput kernels of prefill (large batched transfers).
    ``prefill_comm_core_fraction``: share of the matrix cores the prefill all-to-all occupies
    while it overlaps compute (0 when a copy engine moves the data).
    Dispatch messages carry per-token scales: one per ``scale_group_size`` hidden elements
    (0: one per token), 4 bytes each, padded to ``scale_slot_bytes``.
    """

    decode: str
    prefill: str
    prefill_comm_core_fraction: float = 0.0
    scale_group_size: int = 0
    scale_slot_bytes: int = 0

    def __post_init__(self) -> None:
        for phase in ("decode", "prefill"):
            if getattr(self, phase) not in EP_PATHS:
                raise ValueError(f"ep.{phase} must be one of {EP_PATHS} "
                                 f"(got {getattr(self, phase)!r})")
        if not 0 <= self.prefill_comm_core_fraction < 1:
            raise ValueError("ep.prefill_comm_core_fraction must be in [0, 1)")

    def scale_bytes(self, hidden_size: int) -> int:
        """Scale bytes sent with one 8-bit token of ``hidden_size`` elements."""
        groups = -(-hidden_size // self.scale_group_size) if self.scale_group_size else 1
        return max(self.scale_slot_bytes, 4 * groups)


@dataclass(frozen=True)
class HardwareSpec:
    """One accelerator type and the system it sits in.

    ``peak_flops_per_die`` maps a datatype (``bf16``, ``int8``, ``fp8``) to dense peak FLOP/s
    of one die; a datatype missing from the map is not supported natively.
    ``decode_core_split`` is the fraction of the matrix cores given to the attention stream
    and the MoE stream when two decode microbatches overlap (Ascend: 16 + 8 of 24 AIC);
    ``None`` means the streams time-share all cores and only communication overlaps.
    ``scale_up_domain_devices`` is how many devices share the scale-up plane (``ub``).
    ``source_bandwidth_bytes_per_s_per_node`` is, per plane, how fast one node's host DRAM
    can serve remote readers over that plane (EMS: the CPU side of UB, or the node's VPC NIC).
    """

    name: str
    num_dies_per_device: int
    num_devices_per_node: int
    scale_up_domain_devices: int
    peak_flops_per_die: Mapping[str, float]
    vector_flops_per_die: float
    hbm_bytes_per_die: float
    hbm_bandwidth_bytes_per_s_per_die: float
    num_cube_cores_per_die: int
    num_vector_cores_per_die: int
    links: Mapping[str, Link]
    node_bandwidth_bytes_per_s: Mapping[str, float]
    op_costs: OpCosts
    ep_paths: EpPaths = EpPaths("scale_up", "scale_up")
    decode_core_split: tuple[float, float] | None = None
    host_dram_bytes_per_node: float | None = None
    source_bandwidth_bytes_per_s_per_node: Mapping[str, float] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "peak_flops_per_die", MappingProxyType(dict(self.peak_flops_per_die)))
        object.__setattr__(self, "links", MappingProxyType(dict(self.links)))
        object.__setattr__(self, "node_bandwidth_bytes_per_s",
                           MappingProxyType(dict(self.node_bandwidth_bytes_per_s)))
        object.__setattr__(self, "source_bandwidth_bytes_per_s_per_node",
                           MappingProxyType(dict(self.source_bandwidth_bytes_per_s_per_node)))
        for name in ("num_dies_per_device", "num_devices_per_node", "scale_up_domain_devices"):
            if getattr(self, name) < 1:
                raise ValueError(f"hardware {self.name}: {name} must be >= 1")
        for key in ("bf16",):
            if key not in self.peak_flops_per_die:
                raise ValueError(f"hardware {self.name}: peak_flops_per_die needs {key!r}")
        missing = [p for p in PLANES if p not in self.links]
        if missing:
            raise ValueError(f"hardware {self.name}: links missing planes {missing}")
        if self.decode_core_split is not None and abs(sum(self.decode_core_split) - 1) > 1e-9:
            raise ValueError(f"hardware {self.name}: decode_core_split must sum to 1")

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.peak_flops_per_die.items())),
                     self.hbm_bytes_per_die, tuple(self.links.values())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HardwareSpec):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in
                   ("name", "num_dies_per_device", "peak_flops_per_die", "hbm_bytes_per_die",
                    "hbm_bandwidth_bytes_per_s_per_die", "links", "op_costs",
                    "decode_core_split", "scale_up_domain_devices", "ep_paths",
                    "node_bandwidth_bytes_per_s", "source_bandwidth_bytes_per_s_per_node"))

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s of one die for ``dtype``; ValueError if not native."""
        try:
            return self.peak_flops_per_die[dtype]
        except KeyError:
            raise ValueError(f"hardware {self.name} has no native {dtype!r} compute "
                             f"(has {sorted(self.peak_flops_per_die)})") from None

    def link(self, plane: str) -> Link:
        """Per-device figures of ``plane`` (one of ``PLANES``)."""
        try:
            return self.links[plane]
        except KeyError:
            raise ValueError(f"unknown link plane {plane!r}; expected one of {PLANES}") from None

    def die_link(self, plane: str) -> Link:
        """Per-die share of ``plane``: the device bandwidth split evenly over its dies."""
        return self.link(plane).scaled(1 / self.num_dies_per_device, name=f"{plane}/die")

    def node_link(self, plane: str) -> Link:
        """Per-node figures of ``plane``: all devices of a node together."""
        link = self.link(plane)
        node_bw = self.node_bandwidth_bytes_per_s.get(
            plane, link.bandwidth_bytes_per_s * self.num_devices_per_node)
        return replace(link, name=f"{plane}/node", bandwidth_bytes_per_s=node_bw)

    @property
    def hbm_bytes_per_device(self) -> float:
        return self.hbm_bytes_per_die * self.num_dies_per_device

    @property
    def hbm_bandwidth_bytes_per_s_per_device(self) -> float:
        return self.hbm_bandwidth_bytes_per_s_per_die * self.num_dies_per_device
