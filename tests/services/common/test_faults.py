"""A worker applying the faults its heartbeat replies list (kill is tested end to end)."""

from __future__ import annotations

import asyncio
import itertools
import time

from prometheus_client import CollectorRegistry

from services.common.faults import FaultHooks, WorkerFaults
from supernode.v1 import supernode_pb2 as pb


def link(fault_id: str, plane: str, factor: float, remaining_s: float = 0.0) -> pb.Fault:
    return pb.Fault(fault_id=fault_id, kind=pb.FAULT_KIND_DEGRADE_LINK, plane=plane,
                    factor=factor, remaining_s=remaining_s)


class Recorder:
    def __init__(self) -> None:
        self.links: list[dict[str, float]] = []
        self.ems: list[str | None] = []
        self.registry = CollectorRegistry()
        self.faults = WorkerFaults(self.registry, "w0", FaultHooks(
            slow_links=lambda planes: self.links.append(dict(planes)),
            ems_unreachable=self.ems.append))

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, {"engine": "w0", **labels}) or 0.0


async def test_link_faults_are_applied_compounded_and_reverted_when_no_longer_listed() -> None:
    """Listed link faults reach the hook (two on one plane multiply); the same list again
    changes nothing; an empty list restores nominal hardware. Gauges follow."""
    r = Recorder()
    r.faults.update([link("f1", "ub", 2.0), link("f2", "ub", 3.0), link("f3", "rdma", 4.0)])
    r.faults.update([link("f1", "ub", 2.0), link("f2", "ub", 3.0), link("f3", "rdma", 4.0)])
    assert r.links == [{"ub": 6.0, "rdma": 4.0}]
    assert r.sample("supernode_link_slowdown", plane="ub") == 6.0
    assert r.sample("supernode_faults_active", kind="degrade_link") == 3
    r.faults.update([])
    assert r.links[-1] == {} and r.sample("supernode_link_slowdown", plane="ub") == 1.0
    assert r.sample("supernode_faults_active", kind="degrade_link") == 0


async def test_a_listed_fault_expires_here_even_if_no_heartbeat_comes() -> None:
    """Faults with remaining_s end on the worker's own clock (the scheduler may be gone), each
    at its own time."""
    r = Recorder()
    r.faults.update([link("f1", "vpc", 2.0, remaining_s=0.05),
                     link("f2", "rdma", 3.0, remaining_s=0.3)])
    assert r.links == [{"vpc": 2.0, "rdma": 3.0}]
    deadline = time.monotonic() + 10
    while r.links[-1] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert r.links[1:] == [{"rdma": 3.0}, {}]


async def test_ems_unreachable_toggles_the_gate_with_its_mode() -> None:
    """ems_unreachable sets the EMS gate's mode while listed and clears it after."""
    r = Recorder()
    r.faults.update([pb.Fault(fault_id="f1", kind=pb.FAULT_KIND_EMS_UNREACHABLE,
                              mode="blackhole", remaining_s=5.0)])
    r.faults.update([])
    assert r.ems == ["blackhole", None]


async def test_a_stall_blocks_the_event_loop_once_per_fault() -> None:
    """A stall stops the whole event loop for its duration, and a fault id seen again (the
    next heartbeat reply) does not stall again."""
    r = Recorder()
    stall = pb.Fault(fault_id="f9", kind=pb.FAULT_KIND_STALL_WORKER, duration_s=0.3,
                     remaining_s=0.3)
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    r.faults.update([stall])
    await asyncio.sleep(0.05)
    r.faults.update([stall])
    await asyncio.sleep(0.05)
    task.cancel()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert sum(gap >= 0.3 for gap in gaps) == 1
