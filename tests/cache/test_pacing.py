"""SharedResource: streams share a resource max-min fairly, and shares change over time."""

import math

import pytest

from supernode.cache.pacing import SharedResource


def test_streams_starting_together_finish_together_n_times_later():
    """8 equal streams through 2.5 B/s each take 8 x (bytes / 2.5)."""
    r = SharedResource("bucket", 2.5)
    for i in range(8):
        r.add(f"s{i}", 10.0, cap_bytes_per_s=100.0, now_s=0.0)
    assert r.eta_s("s0", 10.0) == pytest.approx(32.0)
    r.advance(32.0)
    assert all(r.finished(f"s{i}") for i in range(8)) and r.num_active == 0


def test_a_late_stream_slows_the_ones_in_flight_from_then_on():
    """A stream joining at t=16 takes its share from then; the others end later than planned."""
    r = SharedResource("bucket", 2.5)
    for i in range(8):
        r.add(f"s{i}", 10.0, 100.0, 0.0)
    r.advance(16.0)
    assert r.done_bytes("s0") == pytest.approx(5.0)
    r.add("late", 10.0, 100.0, 16.0)
    assert r.eta_s("s0", 10.0) == pytest.approx(16.0 + 5.0 * 9 / 2.5)
    assert r.eta_s("late", 10.0) == pytest.approx(34.0 + 5.0 / 2.5)


def test_a_stream_leaving_speeds_up_the_rest():
    """Removing a stream returns its share to the others."""
    r = SharedResource("bucket", 2.0)
    r.add("a", 10.0, 100.0, 0.0)
    r.add("b", 10.0, 100.0, 0.0)
    r.remove("b", 2.0)
    assert r.done_bytes("a") == pytest.approx(2.0)
    assert r.eta_s("a", 10.0) == pytest.approx(6.0)


def test_caps_bind_before_the_resource():
    """A stream never exceeds its own cap; an unshared resource gives every stream its cap."""
    r = SharedResource("pool", 100.0)
    r.add("slow", 10.0, 1.0, 0.0)
    r.add("fast", 990.0, 1000.0, 0.0)
    assert r.eta_s("slow", 10.0) == pytest.approx(10.0)
    assert r.eta_s("fast", 99.0) == pytest.approx(1.0)
    local = SharedResource("node_dram", math.inf)
    local.add("x", 8.0, 4.0, 1.0)
    local.add("y", 8.0, 2.0, 1.0)
    assert (local.eta_s("x", 8.0), local.eta_s("y", 8.0)) == pytest.approx((3.0, 5.0))


def test_eta_of_a_partial_target_and_advance_past_the_end():
    """eta_s answers for any byte count; advancing past the end leaves streams finished."""
    r = SharedResource("bucket", 1.0)
    r.add("a", 4.0, 10.0, 5.0)
    assert r.eta_s("a", 1.0) == pytest.approx(6.0)
    r.advance(100.0)
    assert r.finished("a") and r.eta_s("a", 4.0) == 100.0


def test_bad_streams_are_refused():
    """A duplicate id, a non-positive cap or capacity raise ValueError."""
    r = SharedResource("bucket", 1.0)
    r.add("a", 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="already"):
        r.add("a", 1.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        r.add("b", 1.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        SharedResource("x", 0.0)
