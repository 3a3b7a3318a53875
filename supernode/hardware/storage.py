"""Where model weights come from: the storage tiers of a hardware profile's ``[storage]`` table.

Three tiers feed an instance's HBM (calibration notes s1.5, s7.3; P3 s4.4.3):

- **OBS**, object storage reached over the VPC plane: one bucket whose bandwidth is shared by
  every instance reading it at the same time (the cold tier);
- **local DRAM**, a copy in the host DRAM of the instance's own nodes, read by each device over
  its host path (``host_to_device``); the node's DRAM side is shared by its devices;
- **EMS**, one copy in the DRAM pool of ``ems_pool_num_nodes`` nodes, read by each device over
  the ``ems_ub`` (or ``ems_vpc``) link of ``HardwareSpec``; the pool's host side is shared by
  every instance reading it.

Figures are per device (``Link``) or per node (``*_node_*``), unidirectional, like ``spec``'s.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from supernode.hardware.loader import available_hardware
from supernode.hardware.spec import Link

_PACKAGE = "supernode.hardware.profiles"


@dataclass(frozen=True)
class StorageSpec:
    """The storage tiers of one hardware profile.

    ``obs_bucket``'s bandwidth belongs to the bucket, not to a reader: ``n`` instances loading
    at once get a share each (``supernode.perf.load``). ``host_to_device`` is one device's path
    from its own node's host DRAM; ``host_node_bandwidth_bytes_per_s`` is that DRAM side of one
    node, shared by the node's devices (and, on an EMS pool node, by every reader of the pool).
    """

    obs_bucket: Link
    host_to_device: Link
    host_node_bandwidth_bytes_per_s: float
    ems_pool_num_nodes: int

    def __post_init__(self) -> None:
        if not self.host_node_bandwidth_bytes_per_s > 0:
            raise ValueError("storage: host_node_bandwidth_bytes_per_s must be > 0")
        if self.ems_pool_num_nodes < 1:
            raise ValueError("storage: ems_pool_num_nodes must be >= 1")

    @property
    def ems_pool_host_bandwidth_bytes_per_s(self) -> float:
        """The DRAM side of the whole EMS pool: every pool node's host bandwidth together."""
        return self.ems_pool_num_nodes * self.host_node_bandwidth_bytes_per_s


@functools.cache
def load_storage(name: str) -> StorageSpec:
    """The ``[storage]`` table of the shipped profile ``name``; ValueError if unknown or absent."""
    if name not in available_hardware():
        raise ValueError(f"unknown hardware {name!r}; available: {', '.join(available_hardware())}")
    text = resources.files(_PACKAGE).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    if "storage" not in data:
        raise ValueError(f"hardware {name!r} has no [storage] table")
    return storage_from_dict(data["storage"])


def storage_from_dict(data: dict[str, Any]) -> StorageSpec:
    """Build a ``StorageSpec`` from a parsed ``[storage]`` table (see ``profiles/*.toml``)."""

    def link(name: str) -> Link:
        spec = data[name]
        return Link(name=name, bandwidth_bytes_per_s=float(spec["bandwidth_bytes_per_s"]),
                    latency_s=float(spec["latency_s"]),
                    efficiency=float(spec.get("efficiency", 1.0)))

    return StorageSpec(
        obs_bucket=link("obs_bucket"),
        host_to_device=link("host_to_device"),
        host_node_bandwidth_bytes_per_s=float(data["host_to_device"]["node_bandwidth_bytes_per_s"]),
        ems_pool_num_nodes=int(data["ems_pool_num_nodes"]),
    )
