"""The one clock abstraction: every worker reads time and waits only through a `Clock`.

Model time is the time the emulated hardware would take. A live `WallClock` maps it onto the
wall clock with a `speedup` (model seconds per wall second: 0.1 runs ten times slower than the
modelled hardware); a `VirtualClock` advances only when told to, for the offline simulator and
for tests. Waiting is deadline-based (`sleep_until` an absolute model time), so the jitter of
one wait is absorbed by the next instead of accumulating over a stream.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Model-time source. `now()` is monotonic model seconds since an arbitrary origin."""

    def now(self) -> float: ...

    def to_wall_s(self, model_s: float) -> float:
        """Wall seconds that `model_s` model seconds take on this clock (for deadlines)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once `now() >= deadline` (at once if it already is)."""
        ...

    async def sleep(self, duration_s: float) -> None: ...


class WallClock:
    """Model time = (wall time since start) x speedup."""

    def __init__(self, speedup: float = 1.0) -> None:
        if not speedup > 0:
            raise ValueError(f"speedup must be > 0, got {speedup}")
        self.speedup = speedup
        self._origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.speedup

    def to_wall_s(self, model_s: float) -> float:
        """Wall seconds that `model_s` model seconds take on this clock."""
        return model_s / self.speedup

    async def sleep_until(self, deadline: float) -> None:
        """Wait until `deadline`; a deadline already past still yields to the event loop once,
        so a loop that lags its clock (a decode instance at a high speedup) cannot starve its
        process's other tasks (heartbeats, token streams)."""
        remaining_s = (deadline - self.now()) / self.speedup
        await asyncio.sleep(max(0.0, remaining_s))

    async def sleep(self, duration_s: float) -> None:
        await self.sleep_until(self.now() + duration_s)


class VirtualClock:
    """Model time that moves only through `advance_to`; waits resolve as time passes them."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now = start_s
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def to_wall_s(self, model_s: float) -> float:
        """Virtual time costs no wall time of its own; deadlines stay as given."""
        return model_s

    def next_deadline(self) -> float | None:
        """Earliest deadline anyone waits on, or None."""
        return min((d for d, _ in self._waiters), default=None)

    def advance_to(self, t: float) -> None:
        """Move time forward to `t`, releasing every wait whose deadline has passed."""
        if t < self._now:
            raise ValueError(f"virtual time cannot go back: {t} < {self._now}")
        self._now = t
        due = [(d, f) for d, f in self._waiters if d <= t]
        self._waiters = [(d, f) for d, f in self._waiters if d > t]
        for _, fut in sorted(due, key=lambda x: x[0]):
            if not fut.done():
                fut.set_result(None)

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((deadline, fut))
        await fut

    async def sleep(self, duration_s: float) -> None:
        await self.sleep_until(self._now + duration_s)
