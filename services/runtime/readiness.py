"""Waiting until a starting deployment's own scheduler reports every pool registered."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import httpx


def wait_ready(endpoint: str, instance_id: str, want: Mapping[str, int],
               dead: Callable[[], str | None], timeout_s: float, where: str) -> None:
    """Block until the scheduler at `endpoint` with `instance_id` reports at least `want[pool]`
    workers of each pool registered (ready, or loading their model). RuntimeError when
    `dead()` names a process or container that has died (its message is the error), or at
    the deadline (naming `where` the logs are). A server on the port that is not our
    scheduler never counts as ready."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if problem := dead():
            raise RuntimeError(problem)
        try:
            health = httpx.get(f"{endpoint}/health", timeout=1.0).json()
            ours = health.get("instance_id") == instance_id
            workers, loading = health["workers"], health.get("loading", {})
            if ours and all(workers.get(k, 0) + loading.get(k, 0) >= n
                            for k, n in want.items()):
                return
        except (httpx.HTTPError, ValueError, KeyError, AttributeError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"workers did not register within {timeout_s:.0f}s; logs in {where}")
