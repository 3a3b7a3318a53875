"""The Kubernetes HorizontalPodAutoscaler's rule (autoscaling/v2), for one pool, as pure code.

It follows the HPA controller (kubernetes pkg/controller/podautoscaler: replica_calculator.go
and horizontal.go) step by step, so a policy tried here behaves as it would on a cluster:

1. **Per metric** (`proposal`), with `ratio = value / target` and a tolerance band around 1:
   - a per-instance metric (`type: Pods`, `AverageValue`: waiting, running, kv) averages over
     the ready instances. Within the tolerance: keep the current count. With every instance
     ready: `ceil(ratio x ready)`. Instances not ready yet (starting, loading their model) have
     no metric: on a scale-up they count as 0, on a scale-down as exactly the target; the
     ratio is recomputed over all of them, and if that lands within the tolerance or flips
     the direction, the count stays; else `ceil(new ratio x instances)`.
   - a per-pool metric (`type: Object`, `Value`: ttft): within the tolerance keep the count,
     else `ceil(ratio x ready)`.
2. **Several metrics**: the largest proposal wins. A metric without a value is skipped; while
   any is missing, no scale-down is made (the HPA's rule for invalid metrics).
3. **Stabilization**: every metric-based recommendation is kept with its time; the count moves
   up only as far as the lowest recommendation within `scale_up_window_s`, and down only as
   far as the highest within `scale_down_window_s` (300 s by default: a burst's end must hold
   for five minutes before instances are removed).
4. **Rate**: a `Pods` policy per direction (at most `num_instances` added, or removed, per
   `period_s`, counted from the instances the pool had at the start of that period).
5. **Bounds**: `[min_instances, max_instances]`; a pool outside them is brought inside first.

Times are wall seconds passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

PER_INSTANCE_METRICS = {
    "waiting": "vllm:num_requests_waiting (requests queued on an instance)",
    "running": "vllm:num_requests_running (requests in an instance's running batch)",
    "kv": "vllm:kv_cache_usage_perc (fraction of an instance's KV cache in use)",
}
POOL_METRICS = {"ttft": "mean vllm:time_to_first_token_seconds over the last interval"}
METRICS = {**PER_INSTANCE_METRICS, **POOL_METRICS}


@dataclass(frozen=True)
class Target:
    """Keep `metric` of `pool` at `value` (per instance, or for the pool: see METRICS)."""

    pool: str
    metric: str
    value: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; one of {', '.join(METRICS)}")
        if not self.value > 0:
            raise ValueError(f"target of {self.pool}:{self.metric} must be > 0, got {self.value}")


@dataclass(frozen=True)
class RatePolicy:
    """At most `num_instances` added (or removed) per `period_s` (the HPA's `type: Pods`)."""

    num_instances: int
    period_s: float

    def __post_init__(self) -> None:
        if self.num_instances < 1 or not self.period_s > 0:
            raise ValueError("a rate policy needs >= 1 instance per period > 0 s")


@dataclass(frozen=True)
class Behavior:
    """The HPA's `behavior`, with deploy/k8s/hpa.yaml's values as defaults."""

    min_instances: int = 1
    max_instances: int = 8
    tolerance: float = 0.1
    """The HPA's default (--horizontal-pod-autoscaler-tolerance)."""
    scale_up_window_s: float = 0.0
    scale_down_window_s: float = 300.0
    scale_up: RatePolicy = field(default_factory=lambda: RatePolicy(2, 30.0))
    scale_down: RatePolicy = field(default_factory=lambda: RatePolicy(1, 120.0))

    def __post_init__(self) -> None:
        if not 1 <= self.min_instances <= self.max_instances:
            raise ValueError(f"need 1 <= min ({self.min_instances}) <= max "
                             f"({self.max_instances})")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance}")
        if self.scale_up_window_s < 0 or self.scale_down_window_s < 0:
            raise ValueError("stabilization windows must be >= 0 s")


@dataclass(frozen=True)
class Observation:
    """One pool at one moment: its instances, how many are ready, and the metrics."""

    num_instances: int
    """Instances the runtime runs for the pool (the HPA's current replicas)."""
    num_ready: int
    """Of those, registered and ready in the scheduler: the ones with metrics."""
    values: Mapping[str, float | None]
    """Per-instance metrics: their sum over the ready instances; pool metrics: the value.
    None (or absent): not available now."""


@dataclass(frozen=True)
class Proposal:
    """What one metric asks for, with its inputs."""

    metric: str
    value: float | None
    """Per instance (the average over the ready ones) or for the pool; None: unavailable."""
    target: float
    ratio: float | None
    num_instances: int | None
    """None when the metric has no value."""


@dataclass(frozen=True)
class Decision:
    """One evaluation for one pool, with everything it was computed from."""

    pool: str
    at_s: float
    current: int
    ready: int
    proposals: tuple[Proposal, ...]
    recommended: int | None
    """The metrics' proposal (before stabilization); None when no metric had a value."""
    stabilized: int
    desired: int
    """After stabilization, rate policy and bounds: what the pool is scaled to."""
    reason: str


def proposal(target: Target, obs: Observation, tolerance: float) -> Proposal:
    """Step 1 for one metric."""
    total = obs.values.get(target.metric)
    ready = min(obs.num_ready, obs.num_instances)
    if total is None or (target.metric in PER_INSTANCE_METRICS and ready == 0):
        return Proposal(target.metric, None, target.value, None, None)
    if target.metric in POOL_METRICS:
        ratio = total / target.value
        keep = abs(1 - ratio) <= tolerance
        return Proposal(target.metric, total, target.value, ratio,
                        obs.num_instances if keep else math.ceil(ratio * ready))
    ratio = total / ready / target.value
    return Proposal(target.metric, total / ready, target.value, ratio,
                    _per_instance(ratio, total, ready, obs.num_instances, target.value,
                                  tolerance))


def _per_instance(ratio: float, total: float, ready: int, current: int, target: float,
                  tolerance: float) -> int:
    """replica_calculator.go's calcPlainMetricReplicas: instances without metrics count as 0 on
    a scale-up and as the target on a scale-down."""
    missing = current - ready
    if missing == 0 or ratio == 1.0:
        return current if abs(1 - ratio) <= tolerance else math.ceil(ratio * ready)
    filled = total + (missing * target if ratio < 1 else 0.0)
    new_ratio = filled / current / target
    if abs(1 - new_ratio) <= tolerance or (ratio < 1 < new_ratio) or (ratio > 1 > new_ratio):
        return current
    return math.ceil(new_ratio * current)


@dataclass
class _Event:
    at_s: float
    change: int


class PoolAutoscaler:
    """Steps 1 to 5 for one pool, keeping the recommendations and scale events they need."""

    def __init__(self, pool: str, targets: list[Target], behavior: Behavior) -> None:
        if not targets or any(t.pool != pool for t in targets):
            raise ValueError(f"pool {pool}: give at least one target, all for this pool")
        self.pool = pool
        self.targets = targets
        self.behavior = behavior
        self._recommendations: list[tuple[float, int]] = []
        self._ups: list[_Event] = []
        self._downs: list[_Event] = []

    def decide(self, obs: Observation, now_s: float) -> Decision:
        """The count the pool should have now. Call `scaled` once the runtime has applied it."""
        b, current = self.behavior, obs.num_instances
        proposals = tuple(proposal(t, obs, b.tolerance) for t in self.targets)
        counts = [p.num_instances for p in proposals if p.num_instances is not None]
        recommended = max(counts) if counts else None
        if recommended is not None and len(counts) < len(proposals):
            recommended = max(recommended, current)  # a metric is missing: no scale-down
        if current < b.min_instances or current > b.max_instances:
            desired = min(max(current, b.min_instances), b.max_instances)
            return Decision(self.pool, now_s, current, obs.num_ready, proposals, recommended,
                            current, desired, "outside the bounds")
        if recommended is None:
            return Decision(self.pool, now_s, current, obs.num_ready, proposals, None, current,
                            current, "no metric available")
        stabilized = self._stabilize(recommended, current, now_s)
        desired, reason = self._limit(stabilized, current, now_s)
        return Decision(self.pool, now_s, current, obs.num_ready, proposals, recommended,
                        stabilized, desired, reason)

    def scaled(self, previous: int, new: int, now_s: float) -> None:
        """Record a change the runtime made (for the rate policies)."""
        if new > previous:
            self._ups.append(_Event(now_s, new - previous))
        elif new < previous:
            self._downs.append(_Event(now_s, previous - new))
        keep_s = max(self.behavior.scale_up.period_s, self.behavior.scale_down.period_s)
        self._ups = [e for e in self._ups if now_s - e.at_s < keep_s]
        self._downs = [e for e in self._downs if now_s - e.at_s < keep_s]

    def _stabilize(self, recommended: int, current: int, now_s: float) -> int:
        """horizontal.go's stabilizeRecommendationWithBehaviors."""
        b = self.behavior
        self._recommendations.append((now_s, recommended))
        keep_s = max(b.scale_up_window_s, b.scale_down_window_s)
        self._recommendations = [(t, r) for t, r in self._recommendations if now_s - t <= keep_s]
        up = min(r for t, r in self._recommendations if now_s - t <= b.scale_up_window_s)
        down = max(r for t, r in self._recommendations if now_s - t <= b.scale_down_window_s)
        return min(max(current, up), down)

    def _limit(self, desired: int, current: int, now_s: float) -> tuple[int, str]:
        """horizontal.go's convertDesiredReplicasWithBehaviorRate, with one Pods policy per
        direction, then the bounds."""
        b = self.behavior
        if desired > current:
            start = current - self._change(self._ups, b.scale_up, now_s) + \
                self._change(self._downs, b.scale_up, now_s)
            ceiling = min(b.max_instances, max(current, start + b.scale_up.num_instances))
            if desired > ceiling:
                return ceiling, ("at the maximum" if ceiling == b.max_instances
                                 else "scale-up rate limit")
            return desired, "scale up"
        if desired < current:
            start = current - self._change(self._ups, b.scale_down, now_s) + \
                self._change(self._downs, b.scale_down, now_s)
            floor = max(b.min_instances, min(current, start - b.scale_down.num_instances))
            if desired < floor:
                return floor, ("at the minimum" if floor == b.min_instances
                               else "scale-down rate limit")
            return desired, "scale down"
        return desired, "steady"

    @staticmethod
    def _change(events: list[_Event], policy: RatePolicy, now_s: float) -> int:
        """Instances added (or removed) within the policy's period before `now_s`."""
        return sum(e.change for e in events if now_s - e.at_s < policy.period_s)
