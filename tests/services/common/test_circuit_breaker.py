"""The circuit breaker's state machine, on an injected clock."""

from __future__ import annotations

import pytest

from services.common.circuit_breaker import BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make_breaker(changes: list | None = None) -> CircuitBreaker:
    seen = changes if changes is not None else []
    return CircuitBreaker(failure_threshold=3, open_s=1.0, max_open_s=4.0,
                          on_change=lambda old, new: seen.append((old, new)))


def test_consecutive_failures_open_it_and_a_success_in_between_resets_the_count() -> None:
    """Three failures in a row open the breaker; two, a success, then two keep it closed."""
    b = make_breaker()
    for _ in range(2):
        b.record_failure(now_s=0.0)
    b.record_success()
    for _ in range(2):
        b.record_failure(now_s=0.0)
    assert b.state is CLOSED and b.allow(0.0)
    b.record_failure(now_s=0.0)
    assert b.state is OPEN


def test_open_refuses_until_its_time_then_grants_exactly_one_probe() -> None:
    """Open: every call is refused at once; after open_s the next caller gets the probe
    (half-open), and nobody else does while it is out."""
    b = make_breaker()
    for _ in range(3):
        b.record_failure(now_s=10.0)
    assert not b.allow(10.5)
    assert b.allow(11.0) and b.state is HALF_OPEN
    assert not b.allow(11.0) and not b.allow(30.0)


def test_a_failed_probe_doubles_the_open_time_up_to_the_cap_and_a_success_closes() -> None:
    """Back-off: 1 s, 2 s, 4 s, 4 s between probes; the probe's success closes the breaker
    and the next opening starts from 1 s again."""
    changes: list = []
    b = make_breaker(changes)
    for _ in range(3):
        b.record_failure(now_s=0.0)
    now, waits = 0.0, []
    for _ in range(4):
        opened_at = now
        while not b.allow(now):
            now += 0.25
        waits.append(now - opened_at)
        b.record_failure(now)
    assert waits == [1.0, 2.0, 4.0, 4.0]
    while not b.allow(now):
        now += 0.25
    b.record_success()
    assert b.state is CLOSED and b.num_failures == 0
    for _ in range(3):
        b.record_failure(now)
    assert not b.allow(now + 0.75) and b.allow(now + 1.0)
    assert changes[:3] == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]
    assert (HALF_OPEN, CLOSED) in changes


@pytest.mark.parametrize("args", [(0, 1.0, 2.0), (3, 0.0, 2.0), (3, 3.0, 2.0)])
def test_nonsense_settings_are_refused(args: tuple) -> None:
    """A zero threshold, a zero open time or a cap below it raise ValueError."""
    with pytest.raises(ValueError):
        CircuitBreaker(*args)
