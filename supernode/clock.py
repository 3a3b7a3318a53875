"""The one clock abstraction: every worker reads time and waits only through a `Clock`.

Model time is the time the emulated hardware would take. A live `WallClock` maps it onto the
wall clock with a `speedup` (model seconds per wall second: 0.1 runs ten times slower than the
modelled hardware). Waiting is deadline-based (`sleep_until` an absolute model time), so the
jitter of one wait is absorbed by the next instead of accumulating over a stream.

The request lifecycle (supernode.lifecycle) reads no clock at all: every call takes `now`. The
live services pass a `WallClock`'s time; the offline simulator passes its event loop's virtual
time (supernode.sim.kernel), which is its clock.
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

    def to_model_s(self, wall_s: float) -> float:
        """Model seconds that pass on this clock in `wall_s` wall seconds."""
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

    def to_model_s(self, wall_s: float) -> float:
        return wall_s * self.speedup

    async def sleep_until(self, deadline: float) -> None:
        """Wait until `deadline`; a deadline already past still yields to the event loop once,
        so a loop that lags its clock (a decode instance at a high speedup) cannot starve its
        process's other tasks (heartbeats, token streams)."""
        remaining_s = (deadline - self.now()) / self.speedup
        await asyncio.sleep(max(0.0, remaining_s))

    async def sleep(self, duration_s: float) -> None:
        await self.sleep_until(self.now() + duration_s)
