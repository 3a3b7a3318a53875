"""The HPA rule, step by step, against the Kubernetes controller's behaviour."""

from __future__ import annotations

import pytest

from supernode.autoscale.hpa import (
    Behavior,
    Observation,
    PoolAutoscaler,
    RatePolicy,
    Target,
    proposal,
)

WAITING = Target("decode", "waiting", 4.0)
FAST = Behavior(min_instances=1, max_instances=10, scale_down_window_s=0.0,
                scale_up=RatePolicy(100, 1.0), scale_down=RatePolicy(100, 1.0))


def obs(instances: int, ready: int, **values: float | None) -> Observation:
    return Observation(instances, ready, values)


def test_desired_is_ceil_of_current_times_metric_over_target() -> None:
    """Every instance ready: ceil(ready x average / target) (2 instances averaging 9 waiting
    against a target of 4: ceil(2 x 9 / 4) = 5)."""
    p = proposal(WAITING, obs(2, 2, waiting=18.0), tolerance=0.1)
    assert (p.value, p.ratio, p.num_instances) == (9.0, 2.25, 5)
    assert proposal(WAITING, obs(4, 4, waiting=2.0), 0.1).num_instances == 1


def test_within_the_tolerance_the_count_stays() -> None:
    """|1 - ratio| <= tolerance keeps the current count (10% by default), just outside does
    not."""
    assert proposal(WAITING, obs(3, 3, waiting=3 * 4.3), 0.1).num_instances == 3
    assert proposal(WAITING, obs(3, 3, waiting=3 * 3.7), 0.1).num_instances == 3
    assert proposal(WAITING, obs(3, 3, waiting=3 * 4.5), 0.1).num_instances == 4


def test_instances_not_ready_count_as_zero_on_a_scale_up() -> None:
    """Two of four instances still loading: their 0 dilutes the ratio (16 waiting on 2 ready,
    target 4: ratio 2, then 16 / 4 / 4 = 1 over all four: within tolerance, no change)."""
    assert proposal(WAITING, obs(4, 2, waiting=16.0), 0.1).num_instances == 4
    # enough load survives the dilution: 40 waiting, ratio over all four 2.5 -> ceil(10) = 10
    assert proposal(WAITING, obs(4, 2, waiting=40.0), 0.1).num_instances == 10


def test_instances_not_ready_count_as_the_target_on_a_scale_down() -> None:
    """Scale-down with one instance not ready: it counts as exactly the target, so removal is
    more cautious (1 waiting on 3 ready, 1 missing counted at 4: (1 + 4) / 4 / 4 = 0.3125 ->
    ceil(0.3125 x 4) = 2, where the ready ones alone would say ceil(1/12 x 3) = 1)."""
    p = proposal(WAITING, obs(4, 3, waiting=1.0), 0.1)
    assert p.ratio == pytest.approx(1 / 12) and p.num_instances == 2
    assert proposal(WAITING, obs(4, 3, waiting=0.0), 0.1).num_instances == 1


def test_a_pool_metric_scales_with_the_ready_count() -> None:
    """TTFT (a per-pool Object metric): ceil(ratio x ready), or the count within tolerance."""
    ttft = Target("prefill", "ttft", 2.0)
    assert proposal(ttft, obs(2, 2, ttft=5.0), 0.1).num_instances == 5
    assert proposal(ttft, obs(2, 2, ttft=2.1), 0.1).num_instances == 2
    assert proposal(ttft, obs(2, 2, ttft=None), 0.1).num_instances is None


def test_the_largest_proposal_wins_and_a_missing_metric_blocks_scale_down() -> None:
    """Several targets: the maximum; with one unavailable, the pool never shrinks."""
    pool = PoolAutoscaler("decode", [WAITING, Target("decode", "kv", 0.5)], FAST)
    d = pool.decide(obs(2, 2, waiting=8.0, kv=1.6), now_s=0.0)
    assert [p.num_instances for p in d.proposals] == [2, 4] and d.desired == 4
    d = pool.decide(obs(4, 4, waiting=0.0, kv=None), now_s=1.0)
    assert d.recommended == 4 and d.desired == 4


def test_scale_down_waits_for_the_stabilization_window() -> None:
    """A burst's end is acted on only once every recommendation in the window is low: the
    count follows the highest recommendation of the last `scale_down_window_s`."""
    b = Behavior(1, 10, 0.1, 0.0, 60.0, RatePolicy(100, 1.0), RatePolicy(100, 1.0))
    pool = PoolAutoscaler("decode", [WAITING], b)
    assert pool.decide(obs(1, 1, waiting=20.0), 0.0).desired == 5
    pool.scaled(1, 5, 0.0)
    quiet = obs(5, 5, waiting=0.0)
    assert pool.decide(quiet, 30.0).desired == 5  # 5 was recommended 30 s ago
    assert pool.decide(quiet, 59.0).desired == 5
    d = pool.decide(quiet, 61.0)
    assert (d.recommended, d.desired, d.reason) == (0, 1, "at the minimum")


def test_scale_up_window_takes_the_lowest_recent_recommendation() -> None:
    """With a scale-up window, a spike must persist: the count rises only to the lowest
    recommendation within the window."""
    b = Behavior(1, 10, 0.1, 10.0, 0.0, RatePolicy(100, 1.0), RatePolicy(100, 1.0))
    pool = PoolAutoscaler("decode", [WAITING], b)
    assert pool.decide(obs(2, 2, waiting=8.0), 0.0).desired == 2
    assert pool.decide(obs(2, 2, waiting=40.0), 5.0).desired == 2
    assert pool.decide(obs(2, 2, waiting=40.0), 11.0).desired == 10


def test_rate_policies_limit_each_period() -> None:
    """hpa.yaml's policies: at most 2 added per 30 s (counted from the period's start), and
    at most 1 removed per 120 s."""
    pool = PoolAutoscaler("decode", [WAITING], Behavior(1, 8, scale_down_window_s=0.0))
    d = pool.decide(obs(1, 1, waiting=40.0), 0.0)
    assert (d.recommended, d.desired, d.reason) == (10, 3, "scale-up rate limit")
    pool.scaled(1, 3, 0.0)
    assert pool.decide(obs(3, 3, waiting=120.0), 10.0).desired == 3  # 2 already added
    assert pool.decide(obs(3, 3, waiting=120.0), 31.0).desired == 5
    quiet = PoolAutoscaler("decode", [WAITING], Behavior(1, 8, scale_down_window_s=0.0))
    d = quiet.decide(obs(5, 5, waiting=0.0), 0.0)
    assert (d.desired, d.reason) == (4, "scale-down rate limit")
    quiet.scaled(5, 4, 0.0)
    assert quiet.decide(obs(4, 4, waiting=0.0), 100.0).desired == 4
    assert quiet.decide(obs(4, 4, waiting=0.0), 121.0).desired == 3


def test_a_recent_scale_up_counts_against_the_scale_down_period() -> None:
    """As in the HPA, a period's starting count is the current count minus what was added and
    plus what was removed within the period: right after going 1 -> 3 the pool may drop to
    the minimum at once (start 1, minus 1, floored at min)."""
    pool = PoolAutoscaler("decode", [WAITING], Behavior(1, 8, scale_down_window_s=0.0))
    pool.scaled(1, 3, 0.0)
    d = pool.decide(obs(3, 3, waiting=0.0), 5.0)
    assert (d.desired, d.reason) == (1, "at the minimum")


def test_bounds_hold_and_a_pool_outside_them_is_brought_in() -> None:
    """Never above max or below min; a pool outside the bounds goes to the nearest bound
    whatever the metrics say; no metric at all: no change."""
    pool = PoolAutoscaler("decode", [WAITING], Behavior(2, 4, scale_down_window_s=0.0,
                                                        scale_up=RatePolicy(100, 1.0)))
    assert pool.decide(obs(3, 3, waiting=400.0), 0.0).desired == 4
    d = pool.decide(obs(6, 6, waiting=400.0), 1.0)
    assert (d.desired, d.reason) == (4, "outside the bounds")
    assert pool.decide(obs(1, 1, waiting=0.0), 2.0).desired == 2
    d = pool.decide(obs(3, 3, waiting=None), 3.0)
    assert (d.desired, d.reason) == (3, "no metric available")


@pytest.mark.parametrize("kwargs", [
    {"min_instances": 0}, {"min_instances": 3, "max_instances": 2}, {"tolerance": 1.0},
    {"scale_down_window_s": -1.0},
])
def test_bad_behavior_is_refused(kwargs: dict) -> None:
    """Bounds, tolerance and windows are validated."""
    with pytest.raises(ValueError):
        Behavior(**kwargs)


def test_targets_name_a_known_metric_and_a_positive_value() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        Target("decode", "qps", 1.0)
    with pytest.raises(ValueError, match="> 0"):
        Target("decode", "waiting", 0.0)
