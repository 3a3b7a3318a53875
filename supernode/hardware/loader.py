"""Load ``HardwareSpec`` profiles from the TOML files shipped in ``profiles/``."""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from typing import Any

from supernode.hardware.spec import PLANES, EpPaths, HardwareSpec, Link, OpCosts

_PACKAGE = "supernode.hardware.profiles"


def available_hardware() -> tuple[str, ...]:
    """Names of the shipped hardware profiles."""
    files = resources.files(_PACKAGE).iterdir()
    return tuple(sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml")))


@functools.cache
def load_hardware(name: str) -> HardwareSpec:
    """The shipped profile ``name`` (e.g. ``"ascend-910c"``); ValueError if unknown."""
    if name not in available_hardware():
        raise ValueError(f"unknown hardware {name!r}; available: {', '.join(available_hardware())}")
    text = resources.files(_PACKAGE).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return hardware_from_dict(tomllib.loads(text))


def hardware_from_dict(data: dict[str, Any]) -> HardwareSpec:
    """Build a ``HardwareSpec`` from a parsed profile (see ``profiles/*.toml`` for the keys)."""
    compute, memory = data["compute"], data["memory"]
    peak = {key.removesuffix("_flops_per_die"): float(value) for key, value in compute.items()
            if key.endswith("_flops_per_die") and key != "vector_flops_per_die"}
    links = {plane: Link(name=plane, bandwidth_bytes_per_s=float(spec["bandwidth_bytes_per_s"]),
                         latency_s=float(spec["latency_s"]),
                         efficiency=float(spec.get("efficiency", 1.0)),
                         write_efficiency=_optional_float(spec.get("write_efficiency")))
             for plane, spec in data["links"].items()}
    node_bw = _per_plane(data["links"], "node_bandwidth_bytes_per_s")
    source_bw = _per_plane(data["links"], "source_node_bandwidth_bytes_per_s")
    split = compute.get("decode_core_split")
    if split is not None:
        split = (split[0] / sum(split), split[1] / sum(split))
    host_dram = data.get("host_dram_bytes_per_node")
    return HardwareSpec(
        name=data["name"],
        num_dies_per_device=int(data["num_dies_per_device"]),
        num_devices_per_node=int(data["num_devices_per_node"]),
        scale_up_domain_devices=int(data["scale_up_domain_devices"]),
        peak_flops_per_die=peak,
        vector_flops_per_die=float(compute["vector_flops_per_die"]),
        hbm_bytes_per_die=float(memory["hbm_bytes_per_die"]),
        hbm_bandwidth_bytes_per_s_per_die=float(memory["hbm_bandwidth_bytes_per_s_per_die"]),
        num_cube_cores_per_die=int(compute["num_cube_cores_per_die"]),
        num_vector_cores_per_die=int(compute["num_vector_cores_per_die"]),
        links=links,
        node_bandwidth_bytes_per_s=node_bw,
        op_costs=OpCosts(**{k: float(v) for k, v in data["op_costs"].items()}),
        ep_paths=EpPaths(**data["ep"]),
        decode_core_split=split,
        host_dram_bytes_per_node=None if host_dram is None else float(host_dram),
        source_bandwidth_bytes_per_s_per_node=source_bw,
        notes=data.get("notes", ""),
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _per_plane(links: dict[str, Any], key: str) -> dict[str, float]:
    return {plane: float(spec[key]) for plane, spec in links.items() if key in spec}


__all__ = ["PLANES", "available_hardware", "hardware_from_dict", "load_hardware"]
