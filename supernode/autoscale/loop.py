"""The autoscaler's loop: observe, decide per pool, scale, log the decision.

`Autoscaler.tick(now_s)` is one evaluation (the HPA controller's sync): it asks its `Source`
for an Observation of every pool it manages, lets each pool's `PoolAutoscaler` decide, asks
its `Scaler` to apply every change, and hands every Decision (changed or not) to `on_decision`
with whether it was applied. Sources, scalers and times come from the caller, so a test drives
it with fakes and a fake clock; `run` paces it on the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

from supernode.autoscale.hpa import Decision, Observation, PoolAutoscaler


class Source(Protocol):
    def observe(self) -> Mapping[str, Observation]:
        """An Observation per pool; raises OSError when the metrics cannot be read."""
        ...


class Scaler(Protocol):
    def scale(self, pool: str, num_instances: int) -> None:
        """Have the runtime run `num_instances` of `pool`; raises OSError when it cannot."""
        ...


class Autoscaler:
    def __init__(self, pools: list[PoolAutoscaler], source: Source, scaler: Scaler,
                 on_decision: Callable[[Decision, str], None],
                 on_error: Callable[[str], None]) -> None:
        """`on_decision(decision, outcome)`: outcome is "scaled", "unchanged" or the error
        that kept the change from being applied."""
        self.pools = pools
        self.source = source
        self.scaler = scaler
        self.on_decision = on_decision
        self.on_error = on_error

    def tick(self, now_s: float) -> list[Decision]:
        try:
            observations = self.source.observe()
        except OSError as e:
            self.on_error(f"cannot read the metrics: {e}")
            return []
        decisions = []
        for pool in self.pools:
            obs = observations.get(pool.pool)
            if obs is None:
                self.on_error(f"no figures for pool {pool.pool}")
                continue
            decision = pool.decide(obs, now_s)
            outcome = "unchanged"
            if decision.desired != decision.current:
                try:
                    self.scaler.scale(pool.pool, decision.desired)
                except OSError as e:
                    outcome = f"not applied: {e}"
                else:
                    pool.scaled(decision.current, decision.desired, now_s)
                    outcome = "scaled"
            self.on_decision(decision, outcome)
            decisions.append(decision)
        return decisions

    def run(self, interval_s: float, duration_s: float | None,
            now: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> None:
        """Tick every `interval_s` until `duration_s` has passed (None: until interrupted)."""
        start = now()
        next_at = start
        while duration_s is None or now() - start < duration_s:
            self.tick(now())
            next_at += interval_s
            sleep(max(0.0, next_at - now()))
