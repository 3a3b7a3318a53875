"""Switch the least recently used instance: the model it holds was asked for longest ago."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from supernode.engine.registry import WorkerInfo


class LeastRecentlyUsedSwitch:
    """The candidate a request was routed to least recently (never routed: first); ties go
    to the lowest worker id."""

    def choose(self, candidates: Sequence[WorkerInfo],
               last_routed_at: Mapping[str, float]) -> WorkerInfo:
        return min(candidates,
                   key=lambda w: (last_routed_at.get(w.worker_id, float("-inf")), w.worker_id))
