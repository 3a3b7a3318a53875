"""The autoscaler loop on a fake metrics source and a fake clock: scale up under a burst,
back down after the stabilization window, every decision logged with its inputs."""

from __future__ import annotations

from collections.abc import Mapping

from supernode.autoscale.hpa import Behavior, Decision, Observation, PoolAutoscaler, RatePolicy
from supernode.autoscale.hpa import Target as T
from supernode.autoscale.loop import Autoscaler


class FakeCluster:
    """A pool whose instances become ready `ready_after_s` after they are started, and whose
    waiting requests are set by the test."""

    def __init__(self, ready_after_s: float) -> None:
        self.started_at = [-100.0]  # the first instance has long been ready
        self.ready_after_s = ready_after_s
        self.waiting = 0.0
        self.now = 0.0
        self.fail_reads = False

    def observe(self) -> Mapping[str, Observation]:
        if self.fail_reads:
            raise OSError("connection refused")
        ready = sum(self.now - t >= self.ready_after_s for t in self.started_at)
        return {"decode": Observation(len(self.started_at), ready, {"waiting": self.waiting})}

    def scale(self, pool: str, n: int) -> None:
        assert pool == "decode"
        while len(self.started_at) < n:
            self.started_at.append(self.now)
        del self.started_at[n:]


def run(cluster: FakeCluster, until_s: float, log: list, errors: list,
        autoscaler: Autoscaler) -> None:
    while cluster.now <= until_s:
        autoscaler.tick(cluster.now)
        cluster.now += 1.0


def make(cluster: FakeCluster, log: list, errors: list) -> Autoscaler:
    behavior = Behavior(1, 4, 0.1, 0.0, 10.0, RatePolicy(2, 5.0), RatePolicy(4, 1.0))
    pool = PoolAutoscaler("decode", [T("decode", "waiting", 4.0)], behavior)
    return Autoscaler([pool], cluster, cluster,
                      lambda d, outcome: log.append((d, outcome)), errors.append)


def test_a_burst_scales_up_within_bounds_and_back_down_after_the_window() -> None:
    """Waiting 40 on one instance: +2 at once (rate 2 per 5 s), +1 more five seconds later up
    to the max of 4; after the burst, nothing for 10 s (the window), then back to 1."""
    cluster, log, errors = FakeCluster(ready_after_s=2.0), [], []
    autoscaler = make(cluster, log, errors)
    cluster.waiting = 40.0
    run(cluster, 9.0, log, errors, autoscaler)
    sizes = [(d.at_s, d.current, d.desired) for d, outcome in log if outcome == "scaled"]
    assert sizes == [(0.0, 1, 3), (5.0, 3, 4)]
    assert len(cluster.started_at) == 4
    burst_end = cluster.now
    cluster.waiting = 0.0
    run(cluster, burst_end + 20.0, log, errors, autoscaler)
    down = [(d.at_s, d.current, d.desired) for d, outcome in log if outcome == "scaled"][2:]
    assert len(down) == 1 and down[0][1:] == (4, 1)
    assert down[0][0] - burst_end >= 10.0
    assert errors == []


def test_every_decision_is_logged_with_its_inputs() -> None:
    """One Decision per tick, changed or not, carrying the metric value, target, ratio and the
    proposal, the ready count, and the outcome."""
    cluster, log, errors = FakeCluster(ready_after_s=0.0), [], []
    autoscaler = make(cluster, log, errors)
    cluster.waiting = 2.0
    run(cluster, 2.0, log, errors, autoscaler)
    assert len(log) == 3
    decision, outcome = log[0]
    assert isinstance(decision, Decision) and outcome == "unchanged"
    (p,) = decision.proposals
    assert (p.metric, p.value, p.target, p.ratio) == ("waiting", 2.0, 4.0, 0.5)
    assert decision.ready == 1 and decision.reason == "steady"


def test_an_unreadable_source_is_reported_and_changes_nothing() -> None:
    cluster, log, errors = FakeCluster(ready_after_s=0.0), [], []
    autoscaler = make(cluster, log, errors)
    cluster.fail_reads = True
    cluster.waiting = 100.0
    run(cluster, 1.0, log, errors, autoscaler)
    assert log == [] and len(cluster.started_at) == 1
    assert errors and "cannot read the metrics: connection refused" in errors[0]


def test_run_paces_ticks_on_the_clock_it_is_given() -> None:
    """`run` ticks every interval until the duration has passed, on injected now/sleep."""
    cluster, log, errors = FakeCluster(ready_after_s=0.0), [], []
    autoscaler = make(cluster, log, errors)
    clock = {"t": 100.0}

    def sleep(s: float) -> None:
        clock["t"] += s

    autoscaler.run(interval_s=2.0, duration_s=9.0, now=lambda: clock["t"], sleep=sleep)
    assert [d.at_s for d, _ in log] == [100.0, 102.0, 104.0, 106.0, 108.0]
