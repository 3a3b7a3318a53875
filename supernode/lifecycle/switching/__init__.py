"""Switch policies: which instance of a pool switches to a served model that none holds.

A policy sees the candidates (ready instances of the pool that hold another model and may give
it up: `supernode.lifecycle.models`) and when the lifecycle last routed a request to each, and
picks one. Adding a policy is one file here and one line in `SWITCH_POLICIES`; the name is what
`scheduler.switch_policy` says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from supernode.engine.registry import WorkerInfo
from supernode.lifecycle.switching.least_loaded import LeastLoadedSwitch
from supernode.lifecycle.switching.lru import LeastRecentlyUsedSwitch


class SwitchPolicy(Protocol):
    """Chooses the instance to switch. `candidates` is never empty; `last_routed_at` maps a
    worker id to the model time a request was last routed to it (absent: never)."""

    def choose(self, candidates: Sequence[WorkerInfo],
               last_routed_at: Mapping[str, float]) -> WorkerInfo: ...


SWITCH_POLICIES: dict[str, Callable[[], SwitchPolicy]] = {
    "lru": LeastRecentlyUsedSwitch,
    "least-loaded": LeastLoadedSwitch,
}


def make_switch_policy(name: str) -> SwitchPolicy:
    """Build the switch policy called `name`; ValueError lists the known names."""
    try:
        return SWITCH_POLICIES[name]()
    except KeyError:
        raise ValueError(f"unknown switch policy {name!r} (scheduler.switch_policy); known: "
                         f"{', '.join(SWITCH_POLICIES)}") from None


__all__ = ["SWITCH_POLICIES", "SwitchPolicy", "make_switch_policy"]
