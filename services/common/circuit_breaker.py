"""A circuit breaker: stop calling a dependency that keeps failing, probe it until it is back.

States:
- closed: calls go through; `failure_threshold` failures in a row open the breaker;
- open: `allow` refuses at once (the caller goes on without the dependency, paying no
  timeout) until the open time has passed; then the next `allow` moves to half-open and
  grants that one caller the probe;
- half-open: only the probe is out; its success closes the breaker (and resets the open time),
  its failure opens it again for twice as long, up to `max_open_s`.
Time is passed in (wall seconds, monotonic), never read here. `on_change(old, new)` hears
every transition (for logs and metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failure_threshold: int, open_s: float, max_open_s: float,
                 on_change: Callable[[BreakerState, BreakerState], None] = lambda old, new: None
                 ) -> None:
        if failure_threshold < 1 or not 0 < open_s <= max_open_s:
            raise ValueError("need failure_threshold >= 1 and 0 < open_s <= max_open_s")
        self.failure_threshold = failure_threshold
        self.initial_open_s = open_s
        self.max_open_s = max_open_s
        self.on_change = on_change
        self.state = BreakerState.CLOSED
        self.num_failures = 0
        self.open_s = open_s
        self.open_until = 0.0

    def allow(self, now_s: float) -> bool:
        """May a call go out now? In the open state past its open time, True exactly once:
        that caller holds the probe (the breaker is half-open until it reports back)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now_s >= self.open_until:
            self._move(BreakerState.HALF_OPEN)
            return True
        return False

    def record_success(self) -> None:
        self.num_failures = 0
        self.open_s = self.initial_open_s
        if self.state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED)

    def record_failure(self, now_s: float) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self.open_s = min(self.max_open_s, self.open_s * 2)
            self._open(now_s)
            return
        self.num_failures += 1
        if self.state is BreakerState.CLOSED and self.num_failures >= self.failure_threshold:
            self._open(now_s)

    def _open(self, now_s: float) -> None:
        self.open_until = now_s + self.open_s
        self._move(BreakerState.OPEN)

    def _move(self, state: BreakerState) -> None:
        old, self.state = self.state, state
        self.on_change(old, state)
