"""Model loading: the shared-bandwidth rule, the tiers' order, and cited figures only."""

import pytest

from supernode.hardware.storage import load_storage
from supernode.perf import Deployment
from supernode.perf.load import (
    fair_shares,
    load_plan,
    load_time,
    model_image,
    plan_time,
    prefetch_plan,
    start_times,
    switch_time,
)
from tests.perf.conftest import paper_decode, paper_prefill


def test_deepseek_r1_int8_is_about_671_gb():
    """The unique bytes of R1 at INT8 (BF16 embedding, head and routers) are the paper's
    ~671 GB (notes s7.3); BF16 doubles the quantized part."""
    image = model_image(paper_prefill(mtp_tokens=0))
    assert image.model_bytes == pytest.approx(671e9, rel=0.01)
    assert model_image(paper_prefill(mtp_tokens=0, quant="bf16")).model_bytes > 1.9 * 671e9


def test_per_device_bytes_follow_parallelism():
    """More devices hold less each, and an instance holds at least one full copy."""
    small, large = model_image(paper_prefill()), model_image(paper_decode())
    assert large.bytes_per_device < small.bytes_per_device
    for image in (small, large):
        assert image.instance_bytes >= image.model_bytes


def test_one_cold_start_is_the_bucket_bandwidth():
    """One instance alone reads ~671 GB at 2.5 GB/s: about 269 s, no fitted constant."""
    d = paper_prefill(mtp_tokens=0)
    t = load_time(d, "obs")
    assert t.breakdown["obs_read"] == pytest.approx(model_image(d).model_bytes / 2.5e9)
    assert t.total_s == pytest.approx(269, rel=0.01)
    assert sum(t.breakdown.values()) - t.overlap_s == pytest.approx(t.total_s)


def test_eight_concurrent_obs_loads_take_eight_times_one():
    """Eight instances loading from one bucket at once each get 1/8 of it."""
    d = paper_prefill()
    one, eight = load_time(d, "obs", 1), load_time(d, "obs", 8)
    assert eight.breakdown["obs_read"] == pytest.approx(8 * one.breakdown["obs_read"])
    assert eight.total_s == pytest.approx(8 * one.total_s, rel=0.01)
    assert "share the obs_bucket" in eight.notes[0]


@pytest.mark.parametrize("deployment", [paper_prefill(), paper_decode(),
                                        Deployment.build("h100", "deepseek-r1", 8, quant="fp8")])
def test_warm_tiers_are_much_faster_than_obs(deployment):
    """DRAM and EMS warm starts take a small fraction of a cold start from OBS."""
    obs = load_time(deployment, "obs").total_s
    for source in ("dram", "ems"):
        assert load_time(deployment, source).total_s < obs / 50


def test_ems_over_vpc_is_slower_than_over_ub():
    """The VPC fallback plane (400 Gb/s per node) is slower than UB for the same load."""
    d = paper_prefill()
    assert load_time(d, "ems", plane="vpc").total_s > 10 * load_time(d, "ems").total_s


@pytest.mark.parametrize("source", ["obs", "dram", "ems"])
def test_load_time_is_monotone_in_instances(source):
    """More instances loading at once never makes any of them faster."""
    d = paper_prefill()
    times = [load_time(d, source, n).total_s for n in (1, 2, 4, 8, 16, 64)]
    assert times == sorted(times)


def test_ems_pool_is_shared_by_concurrent_readers():
    """More instances reading EMS at once never load faster, and eight share the pool's host
    side (48 nodes x 160 GB/s) so each takes longer than one alone."""
    d = paper_prefill()
    times = [load_time(d, "ems", n).total_s for n in (1, 2, 4, 8)]
    assert times == sorted(times)
    assert times[-1] > times[0]


@pytest.mark.parametrize("source", ["obs", "dram", "ems"])
def test_load_time_is_monotone_in_bytes(source):
    """A bigger model (BF16 vs INT8 weights) takes longer to load from every tier."""
    d = paper_prefill()
    assert load_time(d.replace(quant="bf16"), source).total_s > load_time(d, source).total_s


def test_fair_shares_meet_small_caps_first():
    """Max-min fairness: a capped stream keeps its cap, the rest split what is left."""
    assert fair_shares(10.0, [1.0, 100.0, 100.0]) == pytest.approx((1.0, 4.5, 4.5))
    assert fair_shares(float("inf"), [3.0, 5.0]) == (3.0, 5.0)
    assert sum(fair_shares(2.5, [7.0] * 8)) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        fair_shares(0.0, [1.0])


def test_cold_start_with_ems_reads_obs_once():
    """With EMS, 8 cold starts cost one OBS read plus 8 EMS reads; without, 8 OBS reads."""
    d = paper_prefill()
    ems, none = start_times(d, "ems", 8), start_times(d, "obs", 8)
    assert ems.cold.breakdown["obs_prefetch"] == pytest.approx(
        plan_time(prefetch_plan(d)).total_s)
    assert none.cold.total_s > 7 * ems.cold.total_s
    assert ems.warm.total_s == pytest.approx(load_time(d, "ems", 8).total_s)
    assert none.warm.total_s == none.cold.total_s and "no cache" in none.warm.notes[-1]
    dram = start_times(d, "dram", 8)
    assert dram.cold.total_s == pytest.approx(none.cold.total_s)
    assert dram.warm.total_s < dram.cold.total_s / 100


def test_switch_is_unload_plus_load():
    """A model switch costs the load from the chosen tier; unloading is noted, not hidden."""
    d = paper_prefill()
    for source in ("obs", "dram", "ems"):
        t = switch_time(d, source)
        assert t.total_s == pytest.approx(load_time(d, source).total_s)
        assert "unload" in t.breakdown and "unload" in t.notes[0]


def test_obs_copy_into_hbm_is_pipelined_under_the_read():
    """Only the last block's copy shows after an OBS read; smaller blocks hide more."""
    d = paper_prefill()
    coarse, fine = load_plan(d, "obs", block_bytes=2**34), load_plan(d, "obs", block_bytes=2**28)
    assert fine.tail_s < coarse.tail_s < coarse.device_s
    assert plan_time(fine).total_s < plan_time(coarse).total_s


def test_figures_come_from_the_profile():
    """Doubling the bucket's bandwidth halves the OBS read: nothing else is in the way."""
    d = paper_prefill()
    storage = load_storage("ascend-910c")
    faster = type(storage)(storage.obs_bucket.scaled(2), storage.host_to_device,
                           storage.host_node_bandwidth_bytes_per_s, storage.ems_pool_num_nodes)
    base = load_time(d, "obs", storage=storage).breakdown["obs_read"]
    assert load_time(d, "obs", storage=faster).breakdown["obs_read"] == pytest.approx(base / 2)


@pytest.mark.parametrize("kwargs, message", [({"source": "nfs"}, "nfs"),
                                             ({"source": "ems", "plane": "wifi"}, "wifi")])
def test_bad_source_or_plane_is_named(kwargs, message):
    """Unknown sources and planes raise, naming the value."""
    with pytest.raises(ValueError, match=message):
        load_plan(paper_prefill(), **kwargs)
    with pytest.raises(ValueError, match="num_instances"):
        plan_time(load_plan(paper_prefill(), "obs"), 0)
