"""The scheduler's injected faults: validation, targeting, delivery, expiry and metrics."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from services.scheduler.fault_book import FaultBook, FaultRejected, FaultSpec
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry
from supernode.v1 import supernode_pb2 as pb

PREFILL, DECODE, EMS = WorkerKind.PREFILL, WorkerKind.DECODE, WorkerKind.EMS


def make_book() -> tuple[FaultBook, CollectorRegistry]:
    registry = WorkerRegistry(lease_s=3.0)
    for worker_id, kind in (("prefill-0", PREFILL), ("decode-0", DECODE), ("decode-1", DECODE),
                            ("ems-0", EMS)):
        registry.register(WorkerInfo(worker_id, kind, f"{worker_id}:1"), 0.0)
    metrics = CollectorRegistry()
    return FaultBook(registry, metrics), metrics


def sample(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    return metrics.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("spec, message", [
    (dict(kind="explode"), "unknown fault kind"),
    (dict(kind="fail_requests", status=200), "status"),
    (dict(kind="fail_requests", count=0), "count"),
    (dict(kind="degrade_link", plane="nvlink", factor=2.0), "plane"),
    (dict(kind="degrade_link", plane="ub", factor=0.5), "factor"),
    (dict(kind="stall_worker", target="decode-0"), "duration_s"),
    (dict(kind="kill_worker"), "target"),
    (dict(kind="ems_unreachable", duration_s=1.0, mode="melt"), "mode"),
    (dict(kind="ems_unreachable"), "duration_s"),
    (dict(kind="degrade_link", plane="ub", factor=2.0, duration_s=-1.0), "duration_s"),
])
def test_bad_specs_are_refused_naming_the_field(spec: dict, message: str) -> None:
    """Every malformed fault raises FaultRejected whose message names the bad field."""
    with pytest.raises(FaultRejected, match=message):
        FaultSpec(**spec)


def test_unknown_targets_are_a_404() -> None:
    """Stalling or killing a worker that is not registered, or degrading an unknown target,
    is refused with status 404; pools are valid link targets."""
    book, _ = make_book()
    for spec in (FaultSpec("kill_worker", target="decode-9"),
                 FaultSpec("degrade_link", target="router", plane="ub", factor=2.0)):
        with pytest.raises(FaultRejected) as e:
            book.add(spec, 0.0)
        assert e.value.status == 404
    book.add(FaultSpec("degrade_link", target="decode", plane="ub", factor=2.0), 0.0)


def test_failing_requests_counts_down_and_then_serves() -> None:
    """fail_requests answers exactly `count` requests with its status, then is gone."""
    book, metrics = make_book()
    book.add(FaultSpec("fail_requests", status=429, count=2), 0.0)
    assert [book.take_request_failure(1.0) for _ in range(3)] == [429, 429, None]
    assert book.active(1.0) == []
    assert sample(metrics, "supernode_fault_failed_requests_total", status="429") == 2
    assert sample(metrics, "supernode_faults_injected_total", kind="fail_requests") == 1
    assert sample(metrics, "supernode_faults_active", kind="fail_requests") == 0


def test_link_faults_reach_their_targets_until_they_expire() -> None:
    """A decode-pool link fault is listed for both decodes (with the time left), not for
    prefill or EMS, and disappears after duration_s."""
    book, metrics = make_book()
    book.add(FaultSpec("degrade_link", target="decode", plane="ub", factor=4.0,
                       duration_s=10.0), now_s=0.0)
    (fault,) = book.for_worker("decode-1", DECODE, 4.0)
    assert (fault.kind, fault.plane, fault.factor) == (pb.FAULT_KIND_DEGRADE_LINK, "ub", 4.0)
    assert fault.remaining_s == pytest.approx(6.0)
    assert book.for_worker("prefill-0", PREFILL, 4.0) == []
    assert book.for_worker("ems-0", EMS, 4.0) == []
    assert sample(metrics, "supernode_faults_active", kind="degrade_link") == 1
    assert book.for_worker("decode-1", DECODE, 10.0) == []
    assert sample(metrics, "supernode_faults_active", kind="degrade_link") == 0


def test_a_fault_without_duration_lasts_until_cleared() -> None:
    """duration_s 0 never expires (remaining_s 0 on the wire); clearing it ends it."""
    book, _ = make_book()
    fault = book.add(FaultSpec("degrade_link", plane="rdma", factor=2.0), 0.0)
    assert book.for_worker("prefill-0", PREFILL, 1e6)[0].remaining_s == 0
    assert book.remove(fault.fault_id) is fault and book.remove(fault.fault_id) is None
    assert book.for_worker("prefill-0", PREFILL, 1e6) == []


def test_one_shot_faults_are_delivered_once_and_a_kill_ends_on_delivery() -> None:
    """A kill is sent in one heartbeat reply and then gone (a restarted worker is not killed
    again); a stall is sent once and stays listed as active for its duration."""
    book, _ = make_book()
    book.add(FaultSpec("kill_worker", target="prefill-0"), 0.0)
    stall = book.add(FaultSpec("stall_worker", target="decode-0", duration_s=5.0), 0.0)
    assert [f.kind for f in book.for_worker("prefill-0", PREFILL, 1.0)] == [
        pb.FAULT_KIND_KILL_WORKER]
    assert book.for_worker("prefill-0", PREFILL, 1.5) == []
    assert [f.kind for f in book.for_worker("decode-0", DECODE, 2.0)] == [
        pb.FAULT_KIND_STALL_WORKER]
    assert book.for_worker("decode-0", DECODE, 2.5) == []
    assert [f.fault_id for f in book.active(6.9)] == [stall.fault_id]
    assert book.active(7.0) == []


def test_undelivered_one_shot_faults_expire() -> None:
    """A stall for a worker that never heartbeats again expires instead of lingering."""
    book, _ = make_book()
    book.add(FaultSpec("stall_worker", target="decode-1", duration_s=1.0), 0.0)
    assert book.active(29.0) and book.active(31.0) == []


def test_ems_faults_go_to_ems_only_and_clear_all_ends_everything() -> None:
    """ems_unreachable is listed for EMS replicas with its mode; clear() removes every fault."""
    book, metrics = make_book()
    book.add(FaultSpec("ems_unreachable", duration_s=5.0, mode="blackhole"), 0.0)
    book.add(FaultSpec("fail_requests", count=3), 0.0)
    (fault,) = book.for_worker("ems-0", EMS, 1.0)
    assert (fault.kind, fault.mode) == (pb.FAULT_KIND_EMS_UNREACHABLE, "blackhole")
    assert book.for_worker("decode-0", DECODE, 1.0) == []
    assert book.clear() == 2 and book.active(1.0) == []
    assert sample(metrics, "supernode_faults_active", kind="ems_unreachable") == 0
