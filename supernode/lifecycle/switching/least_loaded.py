"""Switch the least-loaded instance: the one with the least outstanding work drains soonest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from supernode.engine.registry import WorkerInfo
from supernode.policy.least_loaded import load_score


class LeastLoadedSwitch:
    """The candidate with the lowest load score (routing's `load_score`: queued and running
    work relative to its size); ties go to the lowest worker id."""

    def choose(self, candidates: Sequence[WorkerInfo],
               last_routed_at: Mapping[str, float]) -> WorkerInfo:
        return min(candidates, key=lambda w: (load_score(w), w.worker_id))
