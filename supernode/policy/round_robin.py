"""Round robin over the live workers, in worker-id order."""

from __future__ import annotations

from collections.abc import Sequence

from supernode.engine.registry import WorkerInfo
from supernode.policy.base import RouteRequest


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    def choose(self, request: RouteRequest, workers: Sequence[WorkerInfo]) -> WorkerInfo:
        worker = workers[self._next % len(workers)]
        self._next += 1
        return worker

    def on_routed(self, request: RouteRequest, worker: WorkerInfo) -> None:
        return None
