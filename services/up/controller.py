"""What a running `supernode up` does on request: scale a pool, fault an instance, supervise.

Scaling a pool to N compares N with the pool's instances that are not stopping: new ones are
started under the lowest free names (`decode-1`, ...) and register by themselves (paying their
modelled model load when loads are modelled); surplus ones are stopped newest first (highest
index), with SIGTERM, so each drains (leaves routing, finishes its running requests up to
`drain_timeout_s`) before it exits and is removed. Runtime faults act on one instance: `kill`
(supervision restarts it), `pause` (frozen for `duration_s`, then resumed) and `disconnect`
(off the network for `duration_s`, then back; docker only). Each is reported and counted.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.runtime.base import Instance, InstanceNotFound, Runtime
from supernode.cli.control import MAX_INSTANCES, POOLS

"""Largest pool `scale` accepts: a bound on what one machine is asked to run."""
FAULT_KINDS = ("kill", "pause", "disconnect")
MAX_FAULT_S = 3600.0


class ScaleError(ValueError):
    """A scale or fault request that cannot be applied; the message names the field."""


@dataclass(frozen=True)
class ScaleResult:
    pool: str
    previous: int
    instances: int
    started: tuple[str, ...]
    stopping: tuple[str, ...]


@dataclass
class RuntimeFault:
    fault_id: str
    kind: str
    target: str
    started_at_s: float
    ends_at_s: float | None

    def view(self, now_s: float) -> dict[str, Any]:
        remaining = None if self.ends_at_s is None else max(0.0, self.ends_at_s - now_s)
        return {"id": self.fault_id, "kind": self.kind, "target": self.target,
                "remaining_s": remaining}


class UpController:
    def __init__(self, runtime: Runtime, restart: bool, report: Callable[[str], None],
                 registry: CollectorRegistry,
                 resized: Callable[[str, int], None] = lambda pool, num_instances: None
                 ) -> None:
        """`resized(pool, n)` is told each new pool size (the scheduler's /health expects it)."""
        self.runtime = runtime
        self.resized = resized
        self.restart = restart
        self.report = report
        self.registry = registry
        self._faults: dict[str, RuntimeFault] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.scale_events = Counter("supernode_runtime_scale_events",
                                    "Instances started (up) or stopped (down) by scaling.",
                                    ("pool", "direction"), registry=registry)
        self.faults_injected = Counter("supernode_runtime_faults_injected",
                                       "Runtime faults applied to instances, by kind.",
                                       ("kind",), registry=registry)
        self.faults_active = Gauge("supernode_runtime_faults_active",
                                   "Runtime faults in force now, by kind.", ("kind",),
                                   registry=registry)
        self.instance_gauge = Gauge("supernode_runtime_instances",
                                    "Instances by role and state.", ("role", "state"),
                                    registry=registry)
        for kind in FAULT_KINDS:
            self.faults_injected.labels(kind=kind)
            self.faults_active.labels(kind=kind)

    def pool_instances(self, pool: str) -> list[Instance]:
        """The pool's instances that are not stopping, oldest name first."""
        return sorted((i for i in self.runtime.instances()
                       if i.role == pool and i.state != "stopping"), key=_index)

    def view(self) -> dict[str, Any]:
        instances = self.runtime.instances()
        pools = {pool: sum(i.role == pool and i.state != "stopping" for i in instances)
                 for pool in POOLS}
        return {"runtime": self.runtime.name, "endpoint": self.runtime.endpoint,
                "pools": pools, "instances": [i.__dict__ for i in instances]}

    def scale(self, pool: str, num_instances: int) -> ScaleResult:
        if pool not in POOLS:
            raise ScaleError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if not 1 <= num_instances <= MAX_INSTANCES:
            raise ScaleError(f"instances must be in 1..{MAX_INSTANCES}, got {num_instances}")
        with self._lock:
            current = self.pool_instances(pool)
            taken = {i.name for i in self.runtime.instances()}
            started, stopping = [], []
            for _ in range(num_instances - len(current)):
                name = next(f"{pool}-{k}" for k in itertools.count() if f"{pool}-{k}" not in taken)
                taken.add(name)
                self.runtime.start_instance(pool, name)
                started.append(name)
            for instance in reversed(current[num_instances:]):
                self._end_faults_of(instance.name)
                self.runtime.stop_instance(instance.name)
                stopping.append(instance.name)
        if started:
            self.scale_events.labels(pool=pool, direction="up").inc(len(started))
        if stopping:
            self.scale_events.labels(pool=pool, direction="down").inc(len(stopping))
        if started or stopping:
            self.resized(pool, num_instances)
        self.report(f"scale {pool} {len(current)} -> {num_instances}"
                    + (f"; starting {', '.join(started)}" if started else "")
                    + (f"; draining {', '.join(stopping)}" if stopping else ""))
        return ScaleResult(pool, len(current), num_instances, tuple(started), tuple(stopping))

    def inject(self, kind: str, target: str, duration_s: float, now_s: float) -> RuntimeFault:
        """Apply a runtime fault now; pause and disconnect end after `duration_s`."""
        if kind not in FAULT_KINDS:
            raise ScaleError(f"kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        timed = kind != "kill"
        if timed and not 0 < duration_s <= MAX_FAULT_S:
            raise ScaleError(f"duration_s must be in (0, {MAX_FAULT_S:.0f}], got {duration_s}")
        with self._lock:
            if timed and any(f.target == target for f in self._faults.values()):
                raise ScaleError(f"{target} already has a runtime fault in force; clear it "
                                 "first")
            {"kill": self.runtime.kill_instance, "pause": self.runtime.pause_instance,
             "disconnect": self.runtime.disconnect_instance}[kind](target)
            fault = RuntimeFault(f"r{next(self._ids)}", kind, target, now_s,
                                 now_s + duration_s if timed else None)
            if timed:
                self._faults[fault.fault_id] = fault
        self.faults_injected.labels(kind=kind).inc()
        self.report(f"fault {fault.fault_id}: {kind} {target}"
                    + (f" for {duration_s:g}s" if timed else ""))
        return fault

    def faults(self, now_s: float) -> list[dict[str, Any]]:
        with self._lock:
            return [f.view(now_s) for f in self._faults.values()]

    def clear_fault(self, fault_id: str, now_s: float) -> dict[str, Any] | None:
        """End one fault early; its view, or None when it is not in force."""
        with self._lock:
            fault = self._faults.get(fault_id)
            if fault is None:
                return None
            view = fault.view(now_s)
            self._end(fault, "cleared")
            return view

    def clear_faults(self) -> int:
        with self._lock:
            ended = list(self._faults.values())
            for fault in ended:
                self._end(fault, "cleared")
            return len(ended)

    def tick(self, now_s: float) -> None:
        """End the faults that are due, then supervise."""
        with self._lock:
            for fault in [f for f in self._faults.values()
                          if f.ends_at_s is not None and now_s >= f.ends_at_s]:
                self._end(fault, "over")
        self.runtime.supervise(now_s, self.restart)

    def refresh_gauges(self) -> None:
        """Set the instance and fault gauges (called before each scrape of /metrics)."""
        self.instance_gauge.clear()
        for instance in self.runtime.instances():
            self.instance_gauge.labels(role=instance.role, state=instance.state).inc()
        with self._lock:
            for kind in FAULT_KINDS:
                self.faults_active.labels(kind=kind).set(
                    sum(f.kind == kind for f in self._faults.values()))

    def _end_faults_of(self, name: str) -> None:
        for fault in [f for f in self._faults.values() if f.target == name]:
            self._end(fault, "cleared (instance stopping)")

    def _end(self, fault: RuntimeFault, why: str) -> None:
        del self._faults[fault.fault_id]
        undo = {"pause": self.runtime.resume_instance,
                "disconnect": self.runtime.reconnect_instance}[fault.kind]
        try:
            undo(fault.target)
        except InstanceNotFound:
            return
        except Exception as e:  # an engine error must not take `up` down; say so instead
            self.report(f"fault {fault.fault_id} {why}, but {fault.target} could not be "
                        f"{'resumed' if fault.kind == 'pause' else 'reconnected'}: {e}")
            return
        self.report(f"fault {fault.fault_id} {why}: {fault.target} "
                    f"{'resumed' if fault.kind == 'pause' else 'reconnected'}")


def _index(instance: Instance) -> int:
    return int(instance.name.rsplit("-", 1)[1])
