"""The context-cache fetch of a prefill batch: its path, its sharing, its fixed costs."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernode.perf import CACHE_SOURCES, PrefillBatch, cache_fetch_time, prefill_time

from .conftest import paper_prefill

FAST = settings(max_examples=25, deadline=None)
D = paper_prefill()


def batch(cached: int, n: int = 64, source: str = "ems_ub") -> PrefillBatch:
    return PrefillBatch((4096,) * n, (cached,) * n, source)


@FAST
@given(st.integers(0, 3968), st.integers(1, 3968), st.sampled_from(CACHE_SOURCES))
def test_fetch_grows_with_cached_tokens(cached, extra, source):
    """More cached tokens never make the fetch shorter, on any path."""
    a = cache_fetch_time(batch(cached, source=source), D).total_s
    b = cache_fetch_time(batch(min(4095, cached + extra), source=source), D).total_s
    assert b >= a


def test_nothing_cached_fetches_nothing():
    """A batch without cached prefixes has no fetch part."""
    assert cache_fetch_time(batch(0), D).total_s == 0
    assert "cache_fetch" not in prefill_time(batch(0), D).breakdown


def test_vpc_is_slower_than_ub_for_the_same_prefixes():
    """The VPC plane shares one 400 Gb/s NIC per node (P2 s3.2): a full batch's prefixes take
    longer over it than over UB, where each die reads at ~147 GB/s (P2 Table 1)."""
    ub = cache_fetch_time(batch(3584, source="ems_ub"), D)
    vpc = cache_fetch_time(batch(3584, source="ems_vpc"), D)
    assert vpc.total_s > ub.total_s
    assert vpc.total_s - ub.total_s > 0.1  # ~15 GB over the instance's 2 nodes' VPC NICs


def test_concurrent_requests_share_the_path():
    """64 requests' prefixes fetched together take longer than one request's alone (the
    path is shared), and over VPC far longer than 64 independent fetches on whole links."""
    one = cache_fetch_time(batch(3584, n=1, source="ems_vpc"), D).total_s
    all_ = cache_fetch_time(batch(3584, n=64, source="ems_vpc"), D).total_s
    assert all_ > 10 * one
    node_bytes = 64 * 3584 * 71_424 / 2  # per node: the batch's prefixes over 2 nodes
    assert all_ >= node_bytes / 50e9


@pytest.mark.parametrize("source", ["ems_ub", "ems_vpc"])
def test_instances_fetching_at_once_share_the_pool(source):
    """Prefill instances fetching at the same moment share the pool nodes' side (CPU-side UB,
    ~160 GB/s per node; or each node's VPC NIC): past a point, the more of them, the slower
    each fetch."""
    times = [cache_fetch_time(batch(3584, source=source), D, n).total_s for n in (1, 4, 64)]
    assert times[0] <= times[1] < times[2]


def test_bigger_blocks_cost_fewer_copies():
    """Each cached block lands as one copy per layer with a fixed cost, so 512-token blocks
    fetch faster than 128-token ones (why P3 s4.4.2 sizes blocks for UB efficiency)."""
    small = cache_fetch_time(batch(3584), D).total_s
    large = cache_fetch_time(batch(3584), D.replace(kv_block_tokens=512)).total_s
    assert large < small


def test_fetch_precedes_compute_in_the_batch_time():
    """The batch's compute waits for its prefixes (P3 s4.4.2: fetch, then compute): the fetch
    adds to the batch time and is shown as its own part."""
    t = prefill_time(batch(2048), D)
    fetch = cache_fetch_time(batch(2048), D).total_s
    assert t.breakdown["cache_fetch"] == pytest.approx(fetch)
    no_fetch = prefill_time(batch(2048), D.replace(
        calibration=D.calibration.replace(ems_transfer_overhead_s=0.0)))
    assert t.total_s == pytest.approx(no_fetch.total_s + fetch - no_fetch.breakdown["cache_fetch"])


def test_local_dram_is_the_kv_centric_path():
    """The kv-affinity path reads the instance's own host DRAM over PCIe: no pool side."""
    local = cache_fetch_time(batch(3584, source="local_dram"), D)
    assert local.total_s > 0 and local.bounds["cache_fetch"] in ("fixed", "network")


def test_unknown_cache_source_is_refused():
    """A batch names its cache source from CACHE_SOURCES."""
    with pytest.raises(ValueError, match="cache_source"):
        PrefillBatch((10,), (5,), "floppy")
