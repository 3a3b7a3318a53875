"""Clocks: model time, speedup, deadline-based waits."""

import asyncio
import time

import pytest

from supernode.clock import WallClock


async def test_wall_clock_speedup_scales_waits() -> None:
    """At speedup 2, one model second takes half a wall second."""
    clock = WallClock(speedup=2.0)
    start = time.monotonic()
    await clock.sleep(0.2)
    assert 0.09 <= time.monotonic() - start < 0.2
    assert clock.to_wall_s(1.0) == 0.5


async def test_deadline_waits_do_not_drift() -> None:
    """Chained sleep_until deadlines end near n x step even with work between waits."""
    clock = WallClock(speedup=1.0)
    t0 = clock.now()
    deadline = t0
    for _ in range(20):
        deadline += 0.01
        time.sleep(0.002)  # work between waits is absorbed by the next deadline
        await clock.sleep_until(deadline)
    assert clock.now() - t0 == pytest.approx(0.2, abs=0.05)


async def test_a_past_deadline_still_yields_to_other_tasks() -> None:
    """A loop that is behind its clock (every deadline already past) still lets other tasks
    run: a decode instance at a high speedup once starved its own heartbeats this way."""
    clock = WallClock(speedup=1.0)
    ticks = 0

    async def other() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other())
    for _ in range(100):
        await clock.sleep_until(clock.now() - 1.0)
    task.cancel()
    assert ticks >= 50


def test_wall_clock_rejects_bad_speedup() -> None:
    """A non-positive speedup is refused with the value named."""
    with pytest.raises(ValueError, match="speedup"):
        WallClock(speedup=0)


def test_model_and_wall_seconds_convert_both_ways() -> None:
    """At speedup s, m model seconds take m / s wall seconds, and w wall seconds are w * s."""
    clock = WallClock(0.25)
    assert clock.to_wall_s(1.0) == 4.0 and clock.to_model_s(4.0) == 1.0
