"""How late the emulator delivers first tokens beyond their modelled time, recently.

Each stage is anchored to the request's timeline, so the emulator's own overhead is absorbed
while it is shorter than the stage it hides behind; what is left is the request's `lag_s`. This
keeps the last `WINDOW` of them for /health, where `supernode up` reads it to warn that the
machine is too slow for the chosen speedup.
"""

from __future__ import annotations

from collections import deque
from typing import Any

WINDOW = 200
"""First tokens remembered."""
LATE_FRACTION = 0.05
"""A first token is late when its lag exceeds this share of its modelled TTFT..."""
LATE_FLOOR_S = 0.002
"""...and this many model seconds (jitter below it is not worth a warning)."""


class LagMonitor:
    """The recent first tokens' lag, in model seconds."""

    def __init__(self) -> None:
        self._recent: deque[tuple[float, bool]] = deque(maxlen=WINDOW)

    def observe(self, lag_s: float, modelled_ttft_s: float) -> None:
        late = lag_s > max(LATE_FLOOR_S, LATE_FRACTION * modelled_ttft_s)
        self._recent.append((lag_s, late))

    def summary(self) -> dict[str, Any]:
        """`recent` first tokens, how many were `late`, and the largest lag (model seconds)."""
        lags = [lag for lag, _ in self._recent]
        return {"recent": len(lags), "late": sum(late for _, late in self._recent),
                "max_s": max(lags, default=0.0)}
