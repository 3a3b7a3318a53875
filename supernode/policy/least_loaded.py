"""Least-loaded first: the paper's "route to a low-load node", stateless with respect to the cache."""

from __future__ import annotations

from collections.abc import Sequence

from supernode.engine.registry import WorkerInfo
from supernode.policy.base import RouteRequest


def load_score(worker: WorkerInfo) -> float:
    """Outstanding work relative to the worker's size.

    Prefill: queued prompt tokens per batch budget, plus in-flight requests. Decode: running and
    waiting requests per batch slot. The scheduler's own in-flight count is used too because it
    is fresher than the last heartbeat.
    """
    load = worker.load
    if worker.max_num_batched_tokens:
        return (load.num_queued_tokens / worker.max_num_batched_tokens
                + worker.num_inflight / max(1, worker.num_dies))
    slots = max(1, worker.max_num_seqs)
    return max(worker.num_inflight, load.num_running + load.num_waiting) / slots


class LeastLoaded:
    """Pick the worker with the lowest load score; ties go to the lowest worker id."""

    def choose(self, request: RouteRequest, workers: Sequence[WorkerInfo]) -> WorkerInfo:
        return min(workers, key=lambda w: (load_score(w), w.worker_id))

    def on_routed(self, request: RouteRequest, worker: WorkerInfo) -> None:
        return None
