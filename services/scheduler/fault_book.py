"""The scheduler's injected faults: what an operator asked for, until it expires or is cleared.

Kinds (the admin API's `kind`, see docs/faults.md):
- fail_requests: the next `count` generation requests (/v1/completions, /v1/chat/completions)
  get HTTP `status` with OpenAI error JSON, before any work or stream header;
- degrade_link: the workers in `target` (a worker id, a pool name, or "" for every worker)
  price every message on `plane` `factor` times slower (supernode.hardware.degrade);
- stall_worker: worker `target` stops responding for `duration_s`;
- kill_worker: worker `target` dies at once (SIGKILL);
- ems_unreachable: every EMS replica refuses its calls ("refuse") or leaves them unanswered
  ("blackhole") for `duration_s`.
Workers learn theirs from heartbeat replies (`for_worker`), so a fault reaches a worker within
one heartbeat interval. `duration_s` (wall seconds) bounds every fault; 0 means until cleared
(or, for fail_requests, until `count` requests failed). A kill is done once delivered; a
stall lasts `duration_s` from its delivery. Wall time is passed in, never read here.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from supernode.engine.registry import WorkerKind, WorkerRegistry
from supernode.hardware.degrade import PLANE_ROLES
from supernode.v1 import supernode_pb2 as pb

log = logging.getLogger(__name__)

KINDS: dict[str, int | None] = {
    "fail_requests": None, "degrade_link": pb.FAULT_KIND_DEGRADE_LINK,
    "stall_worker": pb.FAULT_KIND_STALL_WORKER, "kill_worker": pb.FAULT_KIND_KILL_WORKER,
    "ems_unreachable": pb.FAULT_KIND_EMS_UNREACHABLE}
"""Fault kinds and their wire kind (fail_requests never leaves the scheduler)."""
ONE_SHOT = ("stall_worker", "kill_worker")
EMS_MODES = ("refuse", "blackhole")
MAX_DURATION_S = 24 * 3600.0
DELIVERY_TIMEOUT_S = 30.0
"""A stall or kill whose worker does not heartbeat within this long expires undelivered."""


class FaultRejected(ValueError):
    """The fault cannot be injected as asked (HTTP 400 / 404 with this message)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FaultSpec:
    """One fault as asked for; fields a kind does not use are ignored."""

    kind: str
    target: str = ""
    status: int = 503
    count: int = 1
    plane: str = ""
    factor: float = 1.0
    duration_s: float = 0.0
    mode: str = "refuse"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultRejected(f"unknown fault kind {self.kind!r}; expected one of {list(KINDS)}")
        if not (math.isfinite(self.duration_s) and 0 <= self.duration_s <= MAX_DURATION_S):
            raise FaultRejected(f"duration_s must be in 0..{MAX_DURATION_S:.0f}")
        check = getattr(self, f"_check_{self.kind}", None)
        if check is not None:
            check()

    def _check_fail_requests(self) -> None:
        if not 400 <= self.status <= 599:
            raise FaultRejected(f"status must be an HTTP error status (400..599), got {self.status}")
        if self.count < 1:
            raise FaultRejected(f"count must be >= 1, got {self.count}")

    def _check_degrade_link(self) -> None:
        if self.plane not in PLANE_ROLES:
            raise FaultRejected(f"plane must be one of {list(PLANE_ROLES)}, got {self.plane!r}")
        if not (math.isfinite(self.factor) and 1 < self.factor <= 1e6):
            raise FaultRejected(f"factor must be > 1 (times slower), got {self.factor}")

    def _check_stall_worker(self) -> None:
        if not self.target or self.duration_s <= 0:
            raise FaultRejected("stall_worker needs a worker id as target and duration_s > 0")

    def _check_kill_worker(self) -> None:
        if not self.target:
            raise FaultRejected("kill_worker needs a worker id as target")

    def _check_ems_unreachable(self) -> None:
        if self.duration_s <= 0:
            raise FaultRejected("ems_unreachable needs duration_s > 0")
        if self.mode not in EMS_MODES:
            raise FaultRejected(f"mode must be one of {list(EMS_MODES)}, got {self.mode!r}")


@dataclass
class ActiveFault:
    fault_id: str
    spec: FaultSpec
    created_at: float
    expires_at: float | None
    num_left: int = 0
    """fail_requests: requests still to fail."""
    delivered_to: set[str] = field(default_factory=set)

    def view(self, now_s: float) -> dict[str, Any]:
        """The fault as GET /admin/faults shows it."""
        view = {"id": self.fault_id, **dataclasses.asdict(self.spec)}
        view["remaining_s"] = (None if self.expires_at is None
                               else round(max(0.0, self.expires_at - now_s), 3))
        if self.spec.kind == "fail_requests":
            view["requests_left"] = self.num_left
        if KINDS[self.spec.kind] is not None:
            view["delivered_to"] = sorted(self.delivered_to)
        return view


class FaultBook:
    """Active faults by id, with expiry, metrics and logs."""

    def __init__(self, registry: WorkerRegistry, metrics: CollectorRegistry) -> None:
        self.registry = registry
        self._faults: dict[str, ActiveFault] = {}
        self._ids = itertools.count(1)
        self._active = Gauge("supernode_faults_active", "Injected faults active now.", ("kind",),
                             registry=metrics)
        self._injected = Counter("supernode_faults_injected", "Faults injected, by kind.",
                                 ("kind",), registry=metrics)
        self._failed = Counter("supernode_fault_failed_requests",
                               "Requests failed by an injected fail_requests fault.",
                               ("status",), registry=metrics)
        for kind in KINDS:
            self._active.labels(kind=kind)
            self._injected.labels(kind=kind)

    def add(self, spec: FaultSpec, now_s: float) -> ActiveFault:
        """Inject `spec`; FaultRejected (404) when its target worker or pool is unknown."""
        self._check_target(spec)
        fault_id = f"f{next(self._ids)}"
        expires_at = now_s + spec.duration_s if spec.duration_s else None
        if spec.kind in ONE_SHOT:
            expires_at = now_s + DELIVERY_TIMEOUT_S  # until delivered; then see for_worker
        fault = ActiveFault(fault_id, spec, now_s, expires_at, num_left=spec.count)
        self._faults[fault_id] = fault
        self._injected.labels(kind=spec.kind).inc()
        log.warning("fault %s injected: %s", fault_id, _describe(spec))
        self._publish()
        return fault

    def remove(self, fault_id: str) -> ActiveFault | None:
        fault = self._faults.pop(fault_id, None)
        if fault is not None:
            log.warning("fault %s cleared", fault_id)
            self._publish()
        return fault

    def clear(self) -> int:
        ids = list(self._faults)
        for fault_id in ids:
            self.remove(fault_id)
        return len(ids)

    def active(self, now_s: float) -> list[ActiveFault]:
        self.expire(now_s)
        return list(self._faults.values())

    def expire(self, now_s: float) -> None:
        for fault in [f for f in self._faults.values()
                      if f.expires_at is not None and f.expires_at <= now_s]:
            del self._faults[fault.fault_id]
            if fault.spec.kind in ONE_SHOT and not fault.delivered_to:
                log.warning("fault %s expired undelivered: worker %s did not heartbeat within "
                            "%.0fs", fault.fault_id, fault.spec.target, DELIVERY_TIMEOUT_S)
            else:
                log.warning("fault %s ended", fault.fault_id)
            self._publish()

    def take_request_failure(self, now_s: float) -> int | None:
        """The HTTP status to fail this generation request with, or None (serve it)."""
        for fault in self.active(now_s):
            if fault.spec.kind == "fail_requests" and fault.num_left > 0:
                fault.num_left -= 1
                self._failed.labels(status=str(fault.spec.status)).inc()
                if fault.num_left == 0:
                    del self._faults[fault.fault_id]
                    log.warning("fault %s done: %d requests failed with HTTP %d",
                                fault.fault_id, fault.spec.count, fault.spec.status)
                    self._publish()
                return fault.spec.status
        return None

    def for_worker(self, worker_id: str, kind: WorkerKind, now_s: float) -> list[pb.Fault]:
        """The faults that apply to this worker now, as its heartbeat reply carries them.
        Delivering a kill ends it; delivering a stall starts its `duration_s`."""
        out = []
        for fault in self.active(now_s):
            spec = fault.spec
            if spec.kind == "fail_requests" or not _applies(spec, worker_id, kind):
                continue
            if spec.kind in ONE_SHOT:
                if worker_id in fault.delivered_to:
                    continue
                fault.delivered_to.add(worker_id)
                fault.expires_at = now_s + spec.duration_s
                log.warning("fault %s delivered to %s", fault.fault_id, worker_id)
            elif worker_id not in fault.delivered_to:
                fault.delivered_to.add(worker_id)
                log.info("fault %s applies to %s", fault.fault_id, worker_id)
            remaining = 0.0 if fault.expires_at is None else max(1e-3, fault.expires_at - now_s)
            out.append(pb.Fault(fault_id=fault.fault_id, kind=KINDS[spec.kind] or 0,
                                plane=spec.plane,
                                factor=spec.factor, duration_s=spec.duration_s,
                                remaining_s=remaining, mode=spec.mode))
        return out

    def _check_target(self, spec: FaultSpec) -> None:
        if spec.kind in ONE_SHOT and self.registry.get(spec.target) is None:
            raise FaultRejected(f"no registered worker {spec.target!r}", status=404)
        if spec.kind == "degrade_link" and spec.target and spec.target not in (
                WorkerKind.PREFILL.value, WorkerKind.DECODE.value) and self.registry.get(
                spec.target) is None:
            raise FaultRejected(f"target {spec.target!r} is neither a pool (prefill, decode) nor "
                                "a registered worker", status=404)
        if spec.kind == "ems_unreachable" and not self.registry.live(WorkerKind.EMS):
            raise FaultRejected("no EMS replica is registered", status=404)

    def _publish(self) -> None:
        counts = dict.fromkeys(KINDS, 0)
        for fault in self._faults.values():
            counts[fault.spec.kind] += 1
        for kind, n in counts.items():
            self._active.labels(kind=kind).set(n)


def _applies(spec: FaultSpec, worker_id: str, kind: WorkerKind) -> bool:
    if spec.kind == "ems_unreachable":
        return kind == WorkerKind.EMS
    if spec.kind == "degrade_link":
        return kind != WorkerKind.EMS and spec.target in ("", kind.value, worker_id)
    return spec.target == worker_id


def _describe(spec: FaultSpec) -> str:
    target = spec.target or "every worker"
    return {
        "fail_requests": f"the next {spec.count} requests fail with HTTP {spec.status}",
        "degrade_link": f"plane {spec.plane} {spec.factor:g}x slower on {target}",
        "stall_worker": f"worker {spec.target} stalls for {spec.duration_s:g}s",
        "kill_worker": f"worker {spec.target} is killed",
        "ems_unreachable": f"EMS unreachable ({spec.mode})",
    }[spec.kind] + (f", for {spec.duration_s:g}s" if spec.duration_s and spec.kind in (
        "fail_requests", "degrade_link", "ems_unreachable") else "")
