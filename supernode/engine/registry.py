"""The scheduler's live view of the worker pools.

Workers register, then heartbeat with their load; a worker whose last heartbeat is older than
the lease leaves routing. A worker is `loading` (its model's weights) or `ready`; only ready
workers are routed to (`live`), while `registered` and `all` list every state. A draining
worker (it is shutting down) also leaves routing at once but stays known, heartbeating, until
its running requests finish. A worker holds one served `model`; one told to switch to another
(`begin_switch`) leaves routing at once, and is back, with the new model, when it reports
ready with it (registering or heartbeating). Times are passed in (wall seconds, monotonic),
never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class WorkerKind(str, Enum):
    PREFILL = "prefill"
    DECODE = "decode"
    EMS = "ems"


class WorkerState(str, Enum):
    """Whether a worker may be routed to: `loading` its weights, or `ready`."""

    LOADING = "loading"
    READY = "ready"


@dataclass(frozen=True)
class ModelLoadInfo:
    """A worker's model load as it reported it (model seconds)."""

    model_id: str = ""
    source: str = ""
    """"obs" | "dram" | "ems"; "" until the source is chosen."""
    estimated_s: float = 0.0
    load_s: float = 0.0
    """0 while loading."""


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
    state: WorkerState = WorkerState.READY
    model_load: ModelLoadInfo | None = None
    """None when the worker models no load."""
    num_inflight: int = 0
    """Requests the scheduler has sent and not yet seen finish (fresher than heartbeats)."""
    last_seen_s: float = 0.0
    draining: bool = False
    """Shutting down: no new requests are routed to it; its running ones go on."""
    model: str = ""
    """The served model it holds (its name as clients use it); "" when it did not say."""
    switching_to: str = ""
    """The served model it was told to switch to, until it reports ready with it; no new
    request is routed to it meanwhile."""


def _evolve(info: WorkerInfo, **changes: object) -> WorkerInfo:
    """`dataclasses.replace` for WorkerInfo, without its per-call introspection (the
    simulator updates loads on every routing decision)."""
    fields = dict(info.__dict__)
    fields.update(changes)
    new = object.__new__(WorkerInfo)
    new.__dict__.update(fields)
    return new


def _still_switching(switching_to: str, state: WorkerState, model: str) -> str:
    """A switch is over once the worker is ready with its target model."""
    return "" if state is WorkerState.READY and model == switching_to else switching_to


class WorkerRegistry:
    """Registered workers by id, with lease expiry."""

    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self._workers: dict[str, WorkerInfo] = {}

    def register(self, info: WorkerInfo, now_s: float) -> None:
        previous = self._workers.get(info.worker_id)
        inflight = previous.num_inflight if previous else 0
        switching_to = _still_switching(previous.switching_to if previous else "", info.state,
                                        info.model)
        self._workers[info.worker_id] = _evolve(info, last_seen_s=now_s, num_inflight=inflight,
                                                switching_to=switching_to)
        if previous is None:  # keep the table in worker-id order (the views' order)
            self._workers = dict(sorted(self._workers.items()))

    def heartbeat(self, worker_id: str, load: WorkerLoad, now_s: float,
                  state: WorkerState | None = None,
                  model_load: ModelLoadInfo | None = None, model: str | None = None) -> bool:
        """Record a heartbeat (with the worker's state, load status and model when given);
        False when the worker is unknown (it must register again)."""
        info = self._workers.get(worker_id)
        if info is None:
            return False
        changes: dict[str, object] = {"load": load, "last_seen_s": now_s}
        if state is not None:
            changes["state"] = state
        if model_load is not None:
            changes["model_load"] = model_load
        if model:
            changes["model"] = model
        changes["switching_to"] = _still_switching(info.switching_to,
                                                   changes.get("state", info.state),
                                                   changes.get("model", info.model))
        self._workers[worker_id] = _evolve(info, **changes)
        return True

    def begin_switch(self, worker_id: str, model: str) -> bool:
        """The worker is to switch to `model`: out of routing until it is ready with it.
        False when unknown."""
        info = self._workers.get(worker_id)
        if info is None:
            return False
        self._workers[worker_id] = _evolve(info, switching_to=model)
        return True

    def end_switch(self, worker_id: str) -> None:
        """Forget a switch that will not happen (refused, failed): the worker is routed to
        again with whatever model it holds."""
        info = self._workers.get(worker_id)
        if info is not None:
            self._workers[worker_id] = _evolve(info, switching_to="")

    def touch(self, worker_id: str, now_s: float) -> None:
        """Other proof of life (e.g. a token stream still flowing) renews the lease too."""
        info = self._workers.get(worker_id)
        if info is not None:
            self._workers[worker_id] = _evolve(info, last_seen_s=now_s)

    def add_inflight(self, worker_id: str, delta: int) -> None:
        info = self._workers.get(worker_id)
        if info is not None:
            self._workers[worker_id] = _evolve(info, num_inflight=max(0, info.num_inflight + delta))

    def drain(self, worker_id: str) -> bool:
        """Take a worker out of routing while it finishes its running requests (it
        registers again only as a new process). False when unknown."""
        info = self._workers.get(worker_id)
        if info is None:
            return False
        self._workers[worker_id] = _evolve(info, draining=True)
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

    def holder(self, worker_id: str, now_s: float) -> WorkerInfo | None:
        """The worker holding `worker_id` while its lease runs; None once it lapsed (even if
        `expire` has not removed it yet)."""
        info = self._workers.get(worker_id)
        return info if info is not None and now_s - info.last_seen_s <= self.lease_s else None

    def live(self, kind: WorkerKind) -> list[WorkerInfo]:
        """The routing view: ready workers of `kind` that take new requests (a loading
        worker is never routed to, nor a draining or switching one)."""
        return [w for w in self.registered(kind)
                if w.state is WorkerState.READY and not w.draining and not w.switching_to]

    def switching(self, kind: WorkerKind) -> list[WorkerInfo]:
        """Workers of `kind` on their way to another model (draining, then loading it)."""
        return [w for w in self.registered(kind) if w.switching_to]

    def registered(self, kind: WorkerKind) -> list[WorkerInfo]:
        """Every registered worker of `kind`, whatever its state, by worker id."""
        return [w for w in self._workers.values() if w.kind == kind]

    def all(self) -> list[WorkerInfo]:
        return list(self._workers.values())
