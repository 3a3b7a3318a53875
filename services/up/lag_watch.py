"""Warn the person running `supernode up` when the machine cannot keep the chosen speedup.

The scheduler's `/health` reports how many recent first tokens came later than the model said
(`lag`, see services/scheduler/lag.py). When a sizeable share is late the emulator is
measuring the host, not the modelled hardware; the cure is a lower `--speedup` or fewer
processes. This polls now and then and says so at most once per `repeat_s`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

POLL_S = 10.0
"""Seconds between looks at /health."""
REPEAT_S = 60.0
"""Seconds before the same warning is printed again."""
MIN_RECENT = 20
"""First tokens needed before a share of late ones means anything."""
LATE_SHARE = 0.10
"""Share of recent first tokens that must be late to warn."""


def lag_warning(lag: dict[str, Any], speedup: float) -> str | None:
    """The warning for one /health `lag` summary, or None when the recent tokens were on time."""
    recent, late = int(lag.get("recent", 0)), int(lag.get("late", 0))
    if recent < MIN_RECENT or late <= LATE_SHARE * recent:
        return None
    return (f"warning: {late} of the last {recent} first tokens came late (worst by "
            f"{float(lag.get('max_s', 0.0)) * 1e3:,.0f} model ms); this machine cannot keep "
            f"speedup {speedup:g}: lower --speedup for faithful latencies")


class LagWatch:
    """Polls `{endpoint}/health` every `POLL_S` and reports a lag warning through `say`."""

    def __init__(self, endpoint: str, speedup: float, say: Callable[[str], None],
                 get: Callable[[str], dict[str, Any]] | None = None) -> None:
        self._url = f"{endpoint.rstrip('/')}/health"
        self._speedup, self._say = speedup, say
        self._get = get or _get_json
        self._next_poll_at = 0.0
        self._quiet_until = 0.0

    def tick(self, now: float) -> None:
        """Look at /health when due; never raises (a busy or restarting scheduler is skipped)."""
        if now < self._next_poll_at:
            return
        self._next_poll_at = now + POLL_S
        try:
            lag = self._get(self._url).get("lag") or {}
        except (httpx.HTTPError, ValueError):
            return
        message = lag_warning(lag, self._speedup)
        if message is not None and now >= self._quiet_until:
            self._quiet_until = now + REPEAT_S
            self._say(message)


def _get_json(url: str) -> dict[str, Any]:
    """GET a JSON body whatever the status (/health answers 503 while a pool is short)."""
    body = httpx.get(url, timeout=2.0).json()
    return body if isinstance(body, dict) else {}
