"""Degraded hardware: the same spec with some link planes slowed down (fault injection).

A plane slowed by ``factor`` moves every message ``factor`` times slower: its one-message
latency is multiplied and its bandwidth divided by ``factor``, so a transfer of any size takes
``factor`` times as long (``Link.latency_s + n / bandwidth``). Physical planes carry more than
one link role: EMS reads over UB travel on the UB plane, EMS reads over VPC on the VPC network,
so slowing ``ub`` slows ``ems_ub`` too and slowing ``vpc`` slows ``ems_vpc``; the ``ems_*``
roles can also be slowed on their own. Pure functions; nothing here knows about faults' origin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from supernode.hardware.spec import PLANES, HardwareSpec, Link

#: The link roles (``HardwareSpec.links`` keys) that a degraded plane slows.
PLANE_ROLES: Mapping[str, tuple[str, ...]] = {
    "ub": ("ub", "ems_ub"),
    "rdma": ("rdma",),
    "vpc": ("vpc", "ems_vpc"),
    "ems_ub": ("ems_ub",),
    "ems_vpc": ("ems_vpc",),
}


def slowed_link(link: Link, factor: float) -> Link:
    """``link`` with every transfer ``factor`` (>= 1) times slower; the name is kept, so link
    metrics stay labelled by their plane."""
    _check_factor(link.name, factor)
    return replace(link, latency_s=link.latency_s * factor,
                   bandwidth_bytes_per_s=link.bandwidth_bytes_per_s / factor)


def role_slowdowns(plane_factors: Mapping[str, float]) -> dict[str, float]:
    """Per link role, the product of the factors of the degraded planes that carry it (two
    faults on one plane compound). Unknown planes raise ValueError naming them."""
    unknown = sorted(set(plane_factors) - set(PLANE_ROLES))
    if unknown:
        raise ValueError(f"unknown link plane(s) {unknown}; expected one of {PLANES}")
    slowdowns: dict[str, float] = {}
    for plane, factor in plane_factors.items():
        _check_factor(plane, factor)
        for role in PLANE_ROLES[plane]:
            slowdowns[role] = slowdowns.get(role, 1.0) * factor
    return {role: f for role, f in slowdowns.items() if f != 1.0}


def degrade_links(hw: HardwareSpec, plane_factors: Mapping[str, float]) -> HardwareSpec:
    """``hw`` with the planes in ``plane_factors`` slowed (see the module docstring); ``hw``
    itself when nothing is slowed. Per-node bandwidth of a slowed role shrinks with it."""
    slowdowns = role_slowdowns(plane_factors)
    if not slowdowns:
        return hw
    links = {role: slowed_link(link, slowdowns[role]) if role in slowdowns else link
             for role, link in hw.links.items()}
    node = {role: bw / slowdowns.get(role, 1.0)
            for role, bw in hw.node_bandwidth_bytes_per_s.items()}
    return replace(hw, links=links, node_bandwidth_bytes_per_s=node)


def _check_factor(name: str, factor: float) -> None:
    if not (math.isfinite(factor) and factor >= 1.0):
        raise ValueError(f"slowdown factor of {name} must be a finite number >= 1, got {factor}")
