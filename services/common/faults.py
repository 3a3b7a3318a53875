"""A worker's side of fault injection: apply the faults the scheduler lists for it.

The scheduler sends the faults that apply to a worker on every heartbeat reply (state, not
events): `WorkerFaults.update` applies what is listed and reverts what no longer is, so a
cleared or expired fault ends within one heartbeat; a listed fault also expires here on its
own `remaining_s`, should the scheduler become unreachable. What each kind does here:
- degrade_link: the role's `slow_links(plane -> factor)` hook re-prices its batches and
  transfers on a degraded copy of its hardware (supernode.hardware.degrade);
- stall_worker: the whole process stops responding (its event loop is blocked: no gRPC, no
  steps, no heartbeats) for `duration_s`, as a hung process or a long pause would;
- kill_worker: the process dies at once with SIGKILL (no drain, no deregistration);
- ems_unreachable: the role's `ems_unreachable(mode or None)` hook (EMS only).
One-shot faults (stall, kill) run once per fault id. Every change is logged and shown in
`supernode_faults_active{kind}` and `supernode_link_slowdown{plane}` (per link role: a slow
`ub` plane shows on `ub` and `ems_ub`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from supernode.hardware import PLANES
from supernode.hardware.degrade import role_slowdowns
from supernode.v1 import supernode_pb2 as pb

log = logging.getLogger(__name__)

KIND_NAMES = {pb.FAULT_KIND_DEGRADE_LINK: "degrade_link", pb.FAULT_KIND_STALL_WORKER: "stall_worker",
              pb.FAULT_KIND_KILL_WORKER: "kill_worker",
              pb.FAULT_KIND_EMS_UNREACHABLE: "ems_unreachable"}


@dataclass(frozen=True)
class FaultHooks:
    """What a role lets faults change; None: the role has no such part (the fault is ignored)."""

    slow_links: Callable[[Mapping[str, float]], None] | None = None
    """Price work on the hardware with these planes slowed (empty: nominal hardware)."""
    ems_unreachable: Callable[[str | None], None] | None = None
    """Refuse ("refuse") or swallow ("blackhole") EMS calls; None: serve them again."""


class WorkerFaults:
    """Applies one worker's injected faults; `update` is the Registrar's `on_faults`."""

    def __init__(self, registry: CollectorRegistry, worker_id: str, hooks: FaultHooks) -> None:
        self.worker_id = worker_id
        self.hooks = hooks
        self._active = Gauge("supernode_faults_active", "Injected faults applied here now.",
                             ("engine", "kind"), registry=registry)
        self._slowdown = Gauge("supernode_link_slowdown",
                               "Injected slowdown of each link plane (1: nominal).",
                               ("engine", "plane"), registry=registry)
        for kind in KIND_NAMES.values():
            self._active.labels(engine=worker_id, kind=kind)
        for plane in PLANES:
            self._slowdown.labels(engine=worker_id, plane=plane).set(1.0)
        self._listed: dict[str, tuple[pb.Fault, float | None]] = {}
        self._done: set[str] = set()
        self._links: dict[str, float] = {}
        self._ems_mode: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    def update(self, faults: Sequence[pb.Fault]) -> None:
        """The scheduler's current list for this worker (an empty list clears everything)."""
        now = time.monotonic()
        self._listed = {f.fault_id: (f, now + f.remaining_s if f.remaining_s > 0 else None)
                        for f in faults}
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if ends := [f.remaining_s for f in faults if f.remaining_s > 0]:
            self._timer = asyncio.get_running_loop().call_later(min(ends) + 0.01,
                                                                self._on_timer)
        self._reconcile()

    def _on_timer(self) -> None:
        """The soonest listed fault ran out with no heartbeat since: drop it, wait for the next."""
        self._timer = None
        now = time.monotonic()
        self._listed = {k: (f, until) for k, (f, until) in self._listed.items()
                        if until is None or until > now}
        if ends := [until - now for _, until in self._listed.values() if until is not None]:
            self._timer = asyncio.get_running_loop().call_later(min(ends) + 0.01,
                                                                self._on_timer)
        self._reconcile()

    def _reconcile(self) -> None:
        now = time.monotonic()
        live = [f for f, until in self._listed.values() if until is None or until > now]
        self._apply_links({(f.plane, f.fault_id): f.factor for f in live
                           if f.kind == pb.FAULT_KIND_DEGRADE_LINK})
        ems = [f for f in live if f.kind == pb.FAULT_KIND_EMS_UNREACHABLE]
        self._apply_ems((ems[0].mode or "refuse") if ems else None)
        for kind in (pb.FAULT_KIND_DEGRADE_LINK, pb.FAULT_KIND_EMS_UNREACHABLE):
            self._active.labels(engine=self.worker_id, kind=KIND_NAMES[kind]).set(
                sum(f.kind == kind for f in live))
        for fault in live:
            if fault.fault_id not in self._done and fault.kind in (
                    pb.FAULT_KIND_STALL_WORKER, pb.FAULT_KIND_KILL_WORKER):
                self._done.add(fault.fault_id)
                self._one_shot(fault)

    def _apply_links(self, factors: dict[tuple[str, str], float]) -> None:
        planes: dict[str, float] = {}
        for (plane, _), factor in factors.items():
            planes[plane] = planes.get(plane, 1.0) * factor
        if planes == self._links or self.hooks.slow_links is None:
            return
        self.hooks.slow_links(planes)
        self._links = planes
        roles = role_slowdowns(planes)
        for plane in PLANES:
            self._slowdown.labels(engine=self.worker_id, plane=plane).set(roles.get(plane, 1.0))
        if planes:
            log.warning("injected fault: link planes slowed %s; batches and transfers are "
                        "priced on the degraded hardware", planes)
        else:
            log.warning("injected link faults cleared; nominal hardware again")

    def _apply_ems(self, mode: str | None) -> None:
        if mode == self._ems_mode or self.hooks.ems_unreachable is None:
            return
        self.hooks.ems_unreachable(mode)
        self._ems_mode = mode
        if mode:
            log.warning("injected fault: EMS unreachable (%s)", mode)
        else:
            log.warning("injected EMS fault cleared; serving again")

    def _one_shot(self, fault: pb.Fault) -> None:
        if fault.kind == pb.FAULT_KIND_KILL_WORKER:
            log.critical("injected fault %s: killing this worker (SIGKILL)", fault.fault_id)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)
            return
        seconds = fault.duration_s
        log.critical("injected fault %s: stalling this worker for %.1fs (event loop blocked)",
                     fault.fault_id, seconds)
        self._active.labels(engine=self.worker_id, kind="stall_worker").set(1)
        asyncio.get_running_loop().call_soon(self._stall, seconds)

    def _stall(self, seconds: float) -> None:
        time.sleep(seconds)  # on purpose: the stall is the whole event loop standing still
        self._active.labels(engine=self.worker_id, kind="stall_worker").set(0)
        log.warning("stall over after %.1fs; this worker runs again", seconds)
