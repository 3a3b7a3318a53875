"""Physics properties of the hardware model (hypothesis)."""

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from supernode.hardware import Link
from supernode.perf import (
    DecodeBatch,
    PrefillBatch,
    decode_step_time,
    estimate_decode,
    prefill_time,
    transfer_time,
)

from .conftest import paper_decode, paper_prefill

FAST = settings(max_examples=25, deadline=None)
DECODE = paper_decode()
PREFILL = paper_prefill()


@FAST
@given(st.integers(1, 30_000), st.integers(1, 3000), st.integers(0, 16_384))
def test_decode_non_decreasing_in_batch(n, extra, kv):
    """More running requests never make a decode step shorter."""
    a = decode_step_time(DecodeBatch(n, kv), DECODE).total_s
    b = decode_step_time(DecodeBatch(n + extra, kv), DECODE).total_s
    assert b >= a * (1 - 1e-12)


@FAST
@given(st.integers(1, 30_000), st.integers(0, 16_384), st.integers(1, 16_384))
def test_decode_non_decreasing_in_kv_len(n, kv, extra):
    """Longer contexts never make a decode step shorter."""
    a = decode_step_time(DecodeBatch(n, kv), DECODE).total_s
    b = decode_step_time(DecodeBatch(n, kv + extra), DECODE).total_s
    assert b >= a * (1 - 1e-12)


@FAST
@given(st.sampled_from([256, 512, 1024, 2048, 4096, 8192]))
def test_prefill_superlinear_in_prompt_len(n):
    """At a fixed token budget, longer prompts take longer (attention is quadratic)."""
    budget = 16 * 16384
    short = prefill_time(PrefillBatch((n,) * (budget // n)), PREFILL).total_s
    long = prefill_time(PrefillBatch((2 * n,) * (budget // (2 * n))), PREFILL).total_s
    assert long > short


@FAST
@given(st.integers(1, 200), st.integers(0, 8192), st.sampled_from(["decode", "prefill"]))
def test_int8_never_slower_than_bf16(batch_per_device, kv, phase):
    """INT8 weights and GEMMs are never slower than BF16."""
    if phase == "decode":
        t = lambda q: estimate_decode(paper_decode(quant=q), batch_per_device, kv).step_s
    else:
        t = lambda q: prefill_time(PrefillBatch((kv + 1,) * batch_per_device),
                                   paper_prefill(quant=q)).total_s
    assert t("int8") <= t("bf16")


@FAST
@given(st.integers(1, 200), st.integers(0, 8192))
def test_a_losing_overlap_is_always_reported(batch_per_device, kv):
    """With microbatching on, a step is overlapped whenever it can be split; whenever that is
    slower than running serially, the Timing's notes say so (never a silent switch)."""
    on = estimate_decode(paper_decode(microbatch=True), batch_per_device, kv)
    off = estimate_decode(paper_decode(microbatch=False), batch_per_device, kv)
    losing = [n for n in on.timing.notes if "slower than serial" in n]
    assert bool(losing) == (on.step_s > off.step_s * (1 + 1e-12))


def test_microbatch_helps_the_balanced_paper_point():
    """At batch 96/NPU the overlap is strictly faster than serial and hides time."""
    on = estimate_decode(paper_decode(), 96, 4096)
    off = estimate_decode(paper_decode(microbatch=False), 96, 4096)
    assert on.step_s < off.step_s and on.timing.overlap_s > 0


@FAST
@given(st.integers(1, 128), st.integers(0, 8192))
def test_mtp_acceptance_raises_throughput(batch_per_device, kv):
    """MTP acceptance 0 gives fewer tokens/s than 0.7 (same step, fewer tokens)."""
    zero = estimate_decode(paper_decode(mtp_acceptance=0.0), batch_per_device, kv)
    seven = estimate_decode(paper_decode(mtp_acceptance=0.7), batch_per_device, kv)
    assert zero.tokens_per_s_per_device < seven.tokens_per_s_per_device


def _faster_ub(deployment, factor):
    hw = deployment.hardware
    links = dict(hw.links)
    links["ub"] = links["ub"].scaled(factor)
    return deployment.replace(hardware=dataclasses.replace(hw, links=links, name=hw.name))


@FAST
@given(st.floats(1.0, 10.0), st.integers(1, 128), st.integers(0, 8192))
def test_faster_link_never_slows_anything(factor, batch_per_device, kv):
    """More scale-up bandwidth never slows decode, prefill or a transfer."""
    assert (estimate_decode(_faster_ub(DECODE, factor), batch_per_device, kv).step_s
            <= estimate_decode(DECODE, batch_per_device, kv).step_s)
    batch = PrefillBatch((kv + 1,) * batch_per_device)
    assert prefill_time(batch, _faster_ub(PREFILL, factor)).total_s <= prefill_time(batch, PREFILL).total_s
    link = Link("x", 1e9, 1e-6, 0.9)
    assert (transfer_time(10**6, link.scaled(factor)).total_s
            <= transfer_time(10**6, link).total_s)


def test_transfer_time_formula():
    """A transfer takes latency + bytes / (bandwidth * efficiency); negative sizes raise."""
    t = transfer_time(10**9, Link("rdma", 50e9, 5e-6, 0.9))
    assert abs(t.total_s - (5e-6 + 1e9 / 45e9)) < 1e-12
    assert t.bounds == {"latency": "fixed", "transfer": "network"}
    try:
        transfer_time(-1, Link("x", 1e9, 0.0))
    except ValueError:
        return
    raise AssertionError("negative bytes accepted")


def test_cached_prefix_is_cheaper_but_not_free():
    """Serving a prefix from cache cuts prefill time but the suffix still attends over it,
    so even without the fetch the compute exceeds that of a fresh prompt of the suffix's
    length."""
    full = prefill_time(PrefillBatch((4096,) * 64), PREFILL)
    cached = prefill_time(PrefillBatch((4096,) * 64, (3072,) * 64), PREFILL)
    fresh_suffix = prefill_time(PrefillBatch((1024,) * 64), PREFILL).total_s
    compute = cached.total_s - cached.breakdown["cache_fetch"]
    assert fresh_suffix < compute < cached.total_s < full.total_s
    assert cached.breakdown["attention"] > prefill_time(
        PrefillBatch((1024,) * 64), PREFILL).breakdown["attention"]


def test_redundant_experts_reduce_the_default_eplb_skew() -> None:
    """More redundant experts never raise the systematic skew, and the paper's 32 give the
    fitted value; a prefill batch (where expert GEMMs dominate) gets faster with them."""
    from supernode.perf import Deployment, PrefillBatch, prefill_time
    from supernode.perf.experts import systematic_skew

    def prefill(redundant: int) -> Deployment:
        return Deployment.build("ascend-910c", "deepseek-r1", 16, ep=32,
                                num_redundant_experts=redundant)

    skews = [systematic_skew(prefill(r)) for r in (0, 32, 64)]
    assert skews[0] > skews[1] > skews[2] > 1
    assert skews[1] == prefill(32).calibration.eplb_default_skew
    batch = PrefillBatch((4096,) * 64)
    times = [prefill_time(batch, prefill(r)).total_s for r in (0, 32, 64)]
    assert times[0] > times[1] > times[2]
