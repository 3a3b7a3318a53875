"""Global routing policies: a Protocol (base.RoutingPolicy) and one table of names."""

from __future__ import annotations

from collections.abc import Callable

from supernode.policy.base import RouteRequest, RoutingPolicy
from supernode.policy.kv_affinity import KvAffinity
from supernode.policy.least_loaded import LeastLoaded
from supernode.policy.round_robin import RoundRobin

POLICIES: dict[str, Callable[[], RoutingPolicy]] = {
    "least-loaded": LeastLoaded,
    "round-robin": RoundRobin,
    "p2p": LeastLoaded,  # the paper's: any prefill instance reads the shared EMS equally well
    "kv-affinity": KvAffinity,  # per-instance local caches, routed by cached prefix
}


def make_policy(name: str) -> RoutingPolicy:
    """Build the policy called `name`; ValueError lists the known names."""
    try:
        return POLICIES[name]()
    except KeyError:
        raise ValueError(f"unknown routing policy {name!r}; known: {', '.join(POLICIES)}") from None


__all__ = ["POLICIES", "RouteRequest", "RoutingPolicy", "make_policy"]
