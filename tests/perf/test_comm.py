"""Links: fair sharing of concurrent transfers, the P->D hand-off, the all-to-all paths."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernode.hardware import load_hardware
from supernode.perf import Deployment, fair_share_finish_s, kv_handoff_times, transfer_time
from supernode.perf.comm import ep_wire_s
from supernode.perf.experts import remote_nodes_per_token

from .conftest import paper_prefill

FAST = settings(max_examples=40, deadline=None)
KV_4K = 4096 * 71_424  # one 4K-token request's KV with the MTP layer (calibration notes s2)


@FAST
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=40), st.floats(1e9, 1e12),
       st.floats(1e8, 1e11))
def test_fair_share_conserves_bytes_and_orders_by_size(sizes, shared, per_flow):
    """Flows sharing a link finish in size order; none beats its solo time at the per-flow cap;
    the last finishes no sooner than all bytes over the shared rate."""
    finish = fair_share_finish_s(sizes, shared, per_flow)
    assert len(finish) == len(sizes)
    for size, t in zip(sizes, finish):
        assert t >= size / per_flow * (1 - 1e-9)
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    assert all(finish[a] <= finish[b] + 1e-12 for a, b in itertools.pairwise(order))
    assert max(finish) >= sum(sizes) / shared * (1 - 1e-9)


def test_fair_share_rates_rise_as_flows_finish():
    """Two flows on one 10 B/s link: the small one gets 5 B/s until done, then the big one
    runs alone at full rate (max-min fairness, not a fixed split)."""
    assert fair_share_finish_s([10, 30], 10, 100) == pytest.approx([2.0, 4.0])
    assert fair_share_finish_s([10, 30], 10, 4) == pytest.approx([2.5, 7.5])


def test_handoff_alone_is_one_transfer_over_one_die_nic():
    """A single request's KV crosses the RDMA plane at one die's NIC rate (P3 s4.3.3)."""
    d = paper_prefill()
    (alone,) = kv_handoff_times([KV_4K], d)
    solo = transfer_time(KV_4K, d.hardware.die_link("rdma"))
    assert alone.total_s == pytest.approx(solo.total_s)
    assert alone.breakdown["contention"] == 0


def test_concurrent_handoffs_contend_for_the_instance_nics():
    """64 requests finishing together share the instance's 32 die NICs: each takes twice as
    long as alone; fewer than 32 do not slow each other down."""
    d = paper_prefill()
    (alone,) = kv_handoff_times([KV_4K], d)
    full = kv_handoff_times([KV_4K] * 64, d)
    few = kv_handoff_times([KV_4K] * 16, d)
    assert all(t.total_s == pytest.approx(2 * alone.total_s, rel=0.01) for t in full)
    assert all(t.breakdown["contention"] > 0 for t in full)
    assert all(t.total_s == pytest.approx(alone.total_s) for t in few)


def test_handoff_times_keep_input_order():
    """Results come back in input order; a small transfer among big ones finishes first."""
    d = paper_prefill()
    times = kv_handoff_times([KV_4K] * 40 + [KV_4K // 8] + [KV_4K] * 40, d)
    assert times[40].total_s < min(t.total_s for i, t in enumerate(times) if i != 40)


def test_vpc_node_nic_is_shared_and_ub_is_not_the_limit():
    """Seen from a whole node, EMS over VPC is capped at the node's 400 Gb/s (P2 s3.2), far
    below the per-NPU UB reads (P2 Table 1)."""
    hw = load_hardware("ascend-910c")
    assert hw.node_link("ems_vpc").bandwidth_bytes_per_s == pytest.approx(50e9)
    assert hw.link("ems_ub").bandwidth_bytes_per_s * 8 > 20 * hw.node_link(
        "ems_vpc").bandwidth_bytes_per_s


def test_hierarchical_all_to_all_sends_one_copy_per_node():
    """DeepEP-style prefill dispatch on H800 crosses InfiniBand once per destination node, so
    it is faster than sending every token-expert pair over the NICs (the decode path)."""
    d = Deployment.build("h800", "deepseek-r1", 32, ep=32, quant="fp8")
    share = remote_nodes_per_token(d) / 8
    assert 0 < share < 1
    pairs_bytes = 16384 * 8 * d.dispatch_msg_bytes
    assert (ep_wire_s(d.hardware, "hierarchical", 32, pairs_bytes, share)
            < ep_wire_s(d.hardware, "scale_out", 32, pairs_bytes))


def test_group_limited_routing_caps_the_nodes_a_token_reaches():
    """DeepSeek routes each token within 4 expert groups, so however many nodes EP spans, a
    token's experts sit on a bounded number of them; more nodes never means fewer."""
    hits = [remote_nodes_per_token(Deployment.build("h800", "deepseek-r1", n, ep=n, quant="fp8"))
            for n in (8, 16, 32, 64, 128, 256)]
    assert hits[0] == 0
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(hits))
    assert hits[-1] < 8


def test_dispatch_message_carries_the_hardware_scale_layout():
    """Ascend pads the INT8 token scale to 512 B (7.5 KB messages, P3 s4.2.1); Hopper sends
    56 FP32 tile scales with an FP8 token (DSV3 s3.3)."""
    assert Deployment.build("ascend-910c", "deepseek-r1", 16, ep=32).dispatch_msg_bytes == 7680
    assert Deployment.build("h800", "deepseek-r1", 32, ep=32, quant="fp8").dispatch_msg_bytes == 7392
