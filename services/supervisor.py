"""Restarting the children of `supernode up` that exit, as a process supervisor does.

A child that exits (crash, kill, or a clean exit nobody asked for) is started again with the
same command line and ports after an exponential back-off: `initial_backoff_s`, doubling with
each restart that follows a short run, capped at `max_backoff_s`; a child that stayed up for
`stable_s` starts from the initial back-off again. Every exit and restart is reported with its
running count; a child restarted `crash_loop_restarts` times within `crash_loop_window_s` is
reported loudly as crash-looping, with the tail of its log, and is still restarted at the cap
(as Kubernetes' CrashLoopBackOff does), so a transient cause heals by itself.
"""

from __future__ import annotations

import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    stable_s: float = 30.0
    """A child up this long is healthy again: its next back-off is the initial one."""
    crash_loop_restarts: int = 5
    crash_loop_window_s: float = 60.0

    def backoff_s(self, num_quick_restarts: int) -> float:
        """Wait before the next start, after `num_quick_restarts` restarts in a row that each
        ran shorter than `stable_s`."""
        return min(self.max_backoff_s, self.initial_backoff_s * 2 ** min(num_quick_restarts, 30))


class Process(Protocol):
    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...


class Child(Protocol):
    name: str
    process: Process
    log_path: Path


class Restartable(Protocol):
    children: list  # of Child

    def respawn(self, child: Child) -> None: ...


@dataclass
class _State:
    started_at: float
    restart_at: float | None = None
    num_restarts: int = 0
    num_quick: int = 0
    recent: deque[float] = field(default_factory=deque)


class Supervisor:
    """Watches `cluster.children`; call `poll(now)` periodically (wall seconds, monotonic)."""

    def __init__(self, cluster: Restartable, policy: RestartPolicy, report: Callable[[str], None],
                 now_s: float, log_tail: Callable[[Path], str] = lambda path: "") -> None:
        self.cluster = cluster
        self.policy = policy
        self.report = report
        self.log_tail = log_tail
        self._state = {c.name: _State(started_at=now_s) for c in cluster.children}

    def num_restarts(self, name: str) -> int:
        return self._state[name].num_restarts

    def poll(self, now_s: float) -> None:
        for child in self.cluster.children:  # a child added since (add_worker) starts now
            state = self._state.setdefault(child.name, _State(started_at=now_s))
            if child.process.poll() is None:
                if now_s - state.started_at >= self.policy.stable_s:
                    state.num_quick = 0
            elif state.restart_at is None:
                self._on_exit(child, state, now_s)
            elif now_s >= state.restart_at:
                self._restart(child, state, now_s)

    def _on_exit(self, child: Child, state: _State, now_s: float) -> None:
        if now_s - state.started_at >= self.policy.stable_s:
            state.num_quick = 0
        delay = self.policy.backoff_s(state.num_quick)
        state.restart_at = now_s + delay
        self.report(f"{child.name} {describe_exit(child.process.returncode)}; restarting in "
                    f"{delay:.1f}s (restart {state.num_restarts + 1}); log {child.log_path}")
        while state.recent and now_s - state.recent[0] > self.policy.crash_loop_window_s:
            state.recent.popleft()
        if len(state.recent) + 1 >= self.policy.crash_loop_restarts:
            tail = self.log_tail(child.log_path)
            self.report(f"!!! {child.name} keeps crashing: {len(state.recent) + 1} exits within "
                        f"{self.policy.crash_loop_window_s:.0f}s; restarting it every "
                        f"{self.policy.max_backoff_s:.0f}s at most. Last lines of its log:\n"
                        f"{tail}")

    def _restart(self, child: Child, state: _State, now_s: float) -> None:
        self.cluster.respawn(child)
        state.num_restarts += 1
        state.num_quick += 1
        state.recent.append(now_s)
        state.started_at, state.restart_at = now_s, None
        self.report(f"{child.name} restarted (pid {child.process.pid}, restart "
                    f"{state.num_restarts})")


def describe_exit(returncode: int | None) -> str:
    """'exited with 1', 'was killed by SIGKILL'."""
    if returncode is not None and returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with {returncode}"
