"""The scheduler's live view of the worker pools.

Workers register, then heartbeat with their load; a worker whose last heartbeat is older than
the lease leaves routing. A draining worker (it is shutting down) also leaves routing at once
but stays known, heartbeating, until its running requests finish. Times are passed in (wall
seconds, monotonic), never read here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class WorkerKind(str, Enum):
    PREFILL = "prefill"
    DECODE = "decode"
    EMS = "ems"


@dataclass(frozen=True)
class WorkerLoad:
    num_running: int = 0
    num_waiting: int = 0
    kv_used_tokens: int = 0
    num_queued_tokens: int = 0
    busy_fraction: float = 0.0


@dataclass(frozen=True)
class WorkerInfo:
    """One registered worker as routing policies see it."""

    worker_id: str
    kind: WorkerKind
    address: str
    metrics_address: str = ""
    num_devices: int = 0
    num_dies: int = 0
    kv_capacity_tokens: int = 0
    max_num_seqs: int = 0
    max_num_batched_tokens: int = 0
    load: WorkerLoad = WorkerLoad()
    num_inflight: int = 0
    """Requests the scheduler has sent and not yet seen finish (fresher than heartbeats)."""
    last_seen_s: float = 0.0
    draining: bool = False
    """Shutting down: no new requests are routed to it; its running ones go on."""


class WorkerRegistry:
    """Registered workers by id, with lease expiry."""

    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self._workers: dict[str, WorkerInfo] = {}

    def register(self, info: WorkerInfo, now_s: float) -> None:
        previous = self._workers.get(info.worker_id)
        inflight = previous.num_inflight if previous else 0
        self._workers[info.worker_id] = replace(info, last_seen_s=now_s, num_inflight=inflight)

    def heartbeat(self, worker_id: str, load: WorkerLoad, now_s: float) -> bool:
        """Record a heartbeat; False when the worker is unknown (it must register again)."""
        info = self._workers.get(worker_id)
        if info is None:
            return False
        self._workers[worker_id] = replace(info, load=load, last_seen_s=now_s)
        return True

    def touch(self, worker_id: str, now_s: float) -> None:
        """Other proof of life (e.g. a token stream still flowing) renews the lease too."""
        info = self._workers.get(worker_id)
        if info is not None:
            self._workers[worker_id] = replace(info, last_seen_s=now_s)

    def add_inflight(self, worker_id: str, delta: int) -> None:
        info = self._workers.get(worker_id)
        if info is not None:
            self._workers[worker_id] = replace(info, num_inflight=max(0, info.num_inflight + delta))

    def drain(self, worker_id: str) -> bool:
        """Take a worker out of routing while it finishes its running requests (it
        registers again only as a new process). False when unknown."""
        info = self._workers.get(worker_id)
        if info is None:
            return False
        self._workers[worker_id] = replace(info, draining=True)
        return True

    def remove(self, worker_id: str) -> WorkerInfo | None:
        return self._workers.pop(worker_id, None)

    def expire(self, now_s: float) -> list[WorkerInfo]:
        """Drop workers whose lease lapsed; return them."""
        gone = [w for w in self._workers.values() if now_s - w.last_seen_s > self.lease_s]
        for w in gone:
            del self._workers[w.worker_id]
        return gone

    def get(self, worker_id: str) -> WorkerInfo | None:
        return self._workers.get(worker_id)

    def live(self, kind: WorkerKind) -> list[WorkerInfo]:
        """The workers of `kind` that take new requests (draining ones do not)."""
        return sorted((w for w in self._workers.values() if w.kind == kind and not w.draining),
                      key=lambda w: w.worker_id)

    def all(self) -> list[WorkerInfo]:
        return sorted(self._workers.values(), key=lambda w: w.worker_id)
