"""Scaling pools and runtime faults, on a fake runtime: names, order, expiry, counters."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from services.up.controller import ScaleError, UpController
from tests.services.up.fakes import FakeRuntime


def make(pools: dict[str, int], **kwargs: bool) -> tuple[UpController, FakeRuntime, list[str]]:
    runtime, reports = FakeRuntime(pools, **kwargs), []
    return UpController(runtime, True, reports.append, CollectorRegistry()), runtime, reports


def test_scale_up_starts_instances_under_the_lowest_free_names() -> None:
    """decode 1 -> 3 starts decode-1 and decode-2; a name still stopping is not reused."""
    controller, runtime, reports = make({"decode": 1, "prefill": 1})
    result = controller.scale("decode", 3)
    assert (result.previous, result.started, result.stopping) == (1, ("decode-1", "decode-2"), ())
    controller.scale("decode", 2)
    assert runtime.states["decode-2"][1] == "stopping"
    assert controller.scale("decode", 3).started == ("decode-3",)
    assert reports[0] == "scale decode 1 -> 3; starting decode-1, decode-2"


def test_scale_down_stops_the_newest_first_and_counts_events() -> None:
    """decode 4 -> 1 stops decode-3, decode-2, decode-1 (each drains in the runtime); the scale
    counter has one event per instance and direction."""
    controller, runtime, _ = make({"decode": 4})
    result = controller.scale("decode", 1)
    assert result.stopping == ("decode-3", "decode-2", "decode-1")
    assert [c for c in runtime.calls if c[0] == "stop"] == [
        ("stop", "decode-3"), ("stop", "decode-2"), ("stop", "decode-1")]
    assert controller.view()["pools"]["decode"] == 1
    value = controller.registry.get_sample_value(
        "supernode_runtime_scale_events_total", {"pool": "decode", "direction": "down"})
    assert value == 3.0


@pytest.mark.parametrize("pool, n, message", [
    ("ems", 2, "pool must be one of prefill, decode"),
    ("decode", 0, "instances must be in 1..32"),
    ("decode", 33, "instances must be in 1..32"),
])
def test_bad_scale_requests_are_refused_naming_the_field(pool: str, n: int, message: str) -> None:
    controller, runtime, _ = make({"decode": 1})
    with pytest.raises(ScaleError, match=message):
        controller.scale(pool, n)
    assert runtime.calls == []


def test_a_timed_fault_ends_on_the_first_tick_after_its_duration() -> None:
    """pause for 2 s: applied at once, still in force at 1.9 s, resumed by the tick at 2 s,
    then supervision runs; every step is reported."""
    controller, runtime, reports = make({"decode": 2})
    fault = controller.inject("pause", "decode-1", 2.0, now_s=10.0)
    assert runtime.states["decode-1"][1] == "paused"
    controller.tick(11.9)
    assert controller.faults(11.9) == [{"id": fault.fault_id, "kind": "pause",
                                        "target": "decode-1", "remaining_s": pytest.approx(0.1)}]
    controller.tick(12.0)
    assert runtime.states["decode-1"][1] == "running" and controller.faults(12.0) == []
    assert runtime.supervised == [(11.9, True), (12.0, True)]
    assert reports == ["fault r1: pause decode-1 for 2s", "fault r1 over: decode-1 resumed"]


def test_kill_is_instant_and_disconnect_needs_a_runtime_that_can() -> None:
    """kill is not kept as a fault in force; a runtime that cannot disconnect says so and
    nothing is recorded; one fault in force per instance."""
    controller, runtime, _ = make({"decode": 1}, can_disconnect=False)
    controller.inject("kill", "decode-0", 0.0, 0.0)
    assert controller.faults(0.0) == [] and ("kill", "decode-0") in runtime.calls
    with pytest.raises(Exception, match="not here"):
        controller.inject("disconnect", "decode-0", 5.0, 0.0)
    assert controller.faults(0.0) == []
    controller.inject("pause", "decode-0", 5.0, 0.0)
    with pytest.raises(ScaleError, match="already has a runtime fault"):
        controller.inject("pause", "decode-0", 5.0, 0.0)
    with pytest.raises(ScaleError, match="duration_s"):
        controller.inject("pause", "scheduler", 0.0, 0.0)


def test_clearing_and_scaling_down_end_faults_early() -> None:
    """clear_fault / clear_faults undo at once; stopping an instance first undoes its fault
    (a frozen or cut-off worker could not drain)."""
    controller, runtime, _ = make({"decode": 3})
    first = controller.inject("disconnect", "decode-1", 60.0, 0.0)
    controller.inject("pause", "decode-2", 60.0, 0.0)
    assert controller.clear_fault(first.fault_id, 1.0)["target"] == "decode-1"
    assert controller.clear_fault(first.fault_id, 1.0) is None
    controller.scale("decode", 2)
    assert runtime.calls[-2:] == [("resume", "decode-2"), ("stop", "decode-2")]
    controller.inject("pause", "decode-0", 60.0, 0.0)
    assert controller.clear_faults() == 1 and runtime.states["decode-0"][1] == "running"


def test_each_resize_is_told_with_the_pool_s_new_size() -> None:
    """The scheduler hears every change of size (for /health), and nothing when none."""
    told: list[tuple[str, int]] = []
    controller = UpController(FakeRuntime({"decode": 1, "prefill": 1}), True, lambda m: None,
                              CollectorRegistry(), lambda pool, n: told.append((pool, n)))
    controller.scale("decode", 3)
    controller.scale("decode", 3)
    controller.scale("decode", 2)
    assert told == [("decode", 3), ("decode", 2)]
