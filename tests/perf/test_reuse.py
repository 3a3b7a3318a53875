"""The EMS reuse experiment: what prefix reuse buys a prefill instance, and where it flattens."""

import itertools

import pytest

from supernode.perf import reuse_experiment, reuse_point

from .conftest import paper_prefill

D = paper_prefill()


def test_throughput_rises_with_reuse_but_less_than_the_uncached_share():
    """Throughput rises with reuse, but the suffix still attends to the whole prompt and the
    prefixes must be fetched, so a batch at reuse r costs more than (1 - r) of one without."""
    base = reuse_point(D, 4096, 16384, 0.0, "ems_ub")
    points = [reuse_point(D, 4096, 16384, r, "ems_ub") for r in (0.125, 0.25, 0.5, 0.75, 0.9)]
    rates = [base.tokens_per_s_per_device] + [p.tokens_per_s_per_device for p in points]
    assert all(a < b for a, b in itertools.pairwise(rates))
    for p in points:
        assert p.batch_s > (1 - p.cached_prefix_len / 4096) * base.batch_s


def test_no_cache_ignores_the_reuse_rate():
    """Without a cache every reuse rate costs the full prompt."""
    a, b = (reuse_point(D, 4096, 16384, r, "none") for r in (0.0, 0.9))
    assert a.batch_s == b.batch_s and a.ttft_s == b.ttft_s
    assert b.cached_prefix_len == 0 and b.fetch_s == 0


def test_vpc_gains_less_than_ub():
    """At every reuse rate > 0, EMS over VPC gives lower throughput and higher TTFT than over
    UB, and both beat no cache."""
    for r in (0.25, 0.5, 0.9):
        ub, vpc, none = (reuse_point(D, 4096, 16384, r, c) for c in ("ems_ub", "ems_vpc", "none"))
        assert none.tokens_per_s_per_device < vpc.tokens_per_s_per_device < ub.tokens_per_s_per_device
        assert ub.ttft_s < vpc.ttft_s < none.ttft_s


def test_ttft_adds_the_handoff_of_a_full_batch():
    """TTFT = batch (fetch + compute) + the P->D hand-off of the batch's 64 requests, which
    share the instance's NICs."""
    p = reuse_point(D, 4096, 16384, 0.5, "ems_ub")
    assert p.ttft_s == pytest.approx(p.batch_s + p.handoff_s)
    assert p.handoff_s > 4096 * 71_424 / 25e9  # slower than one request alone on a die NIC


def test_experiment_covers_rates_and_caches():
    """The experiment returns one point per (rate, cache), rate-major."""
    points = reuse_experiment(D, 4096, 16384, (0.0, 0.5), ("none", "ems_ub", "ems_vpc"))
    assert [(p.reuse, p.cache) for p in points] == [
        (0.0, "none"), (0.0, "ems_ub"), (0.0, "ems_vpc"),
        (0.5, "none"), (0.5, "ems_ub"), (0.5, "ems_vpc")]


@pytest.mark.parametrize("kwargs,match", [({"reuse": 1.0}, "reuse"), ({"cache": "disk"}, "cache")])
def test_bad_arguments_name_themselves(kwargs, match):
    """Reuse must be in [0, 1) and the cache one of the known settings."""
    args = {"reuse": 0.5, "cache": "ems_ub"} | kwargs
    with pytest.raises(ValueError, match=match):
        reuse_point(D, 4096, 16384, args["reuse"], args["cache"])
