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
from dataclasses import dataclass, replace
from types import MappingProxyType

#: The plane roles every profile defines. ``ub`` is the scale-up plane (UB on CloudMatrix,
#: NVLink on GPUs), ``rdma`` the scale-out plane, ``vpc`` the front-end/storage network,
#: ``ems_ub`` and ``ems_vpc`` an NPU's reach into the pooled host DRAM over UB or VPC.
PLANES = ("ub", "rdma", "vpc", "ems_ub", "ems_vpc")


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

    def __post_init__(self) -> None:
        if not self.bandwidth_bytes_per_s > 0:
            raise ValueError(f"link {self.name}: bandwidth_bytes_per_s must be > 0")
        if self.latency_s < 0:
            raise ValueError(f"link {self.name}: latency_s must be >= 0")
        if not 0 < self.efficiency <= 1:
            raise ValueError(f"link {self.name}: efficiency must be in (0, 1]")

    @property
    def effective_bandwidth_bytes_per_s(self) -> float:
        """Bandwidth actually achieved for bulk transfers."""
        return self.bandwidth_bytes_per_s * self.efficiency

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
class HardwareSpec:
    """One accelerator type and the system it sits in.

    ``peak_flops_per_die`` maps a datatype (``bf16``, ``int8``, ``fp8``) to dense peak FLOP/s
    of one die; a datatype missing from the map is not supported natively.
    ``decode_core_split`` is the fraction of the matrix cores given to the attention stream
    and the MoE stream when two decode microbatches overlap (Ascend: 16 + 8 of 24 AIC);
    ``None`` means the streams time-share all cores and only communication overlaps.
    ``scale_up_domain_devices`` is how many devices share the scale-up plane (``ub``).
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
    decode_core_split: tuple[float, float] | None = None
    host_dram_bytes_per_node: float | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "peak_flops_per_die", MappingProxyType(dict(self.peak_flops_per_die)))
        object.__setattr__(self, "links", MappingProxyType(dict(self.links)))
        object.__setattr__(self, "node_bandwidth_bytes_per_s",
                           MappingProxyType(dict(self.node_bandwidth_bytes_per_s)))
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
                    "decode_core_split", "scale_up_domain_devices"))

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
