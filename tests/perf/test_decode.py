"""Decode mechanisms: chained MTP acceptance and draft cost, the two-microbatch overlap
(including when it loses), and the attention regime by KV dtype and heads per die."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernode.perf import DecodeBatch, Deployment, decode_step_time, estimate_decode

from .conftest import paper_decode

FAST = settings(max_examples=30, deadline=None)


@FAST
@given(st.integers(0, 4), st.floats(0, 1))
def test_mtp_acceptance_is_a_chain(k, a):
    """k drafts accepted as a chain (draft i only if 1..i-1 were) yield 1 + a + ... + a^k
    tokens per step: at most 1 + k*a, and at least 1 + a when k >= 1."""
    d = paper_decode(mtp_tokens=k, mtp_acceptance=a)
    expected = sum(a**i for i in range(k + 1))
    assert d.tokens_per_request_step == pytest.approx(expected)
    assert d.tokens_per_request_step <= 1 + k * a + 1e-12
    if k:
        assert d.tokens_per_request_step >= 1 + a - 1e-12


def test_two_drafts_at_70_percent_give_2_19_tokens():
    """Issue 10's check: 1 + 0.7 + 0.49 = 2.19 expected tokens; TPOT divides by it."""
    e = estimate_decode(paper_decode(mtp_tokens=2, mtp_acceptance=0.7), 32, 4096)
    assert e.step_s / e.tpot_s == pytest.approx(2.19)


def test_later_drafts_are_single_token_passes():
    """The first draft pass extends the MTP layer over the accepted positions; each later draft
    runs one token per request, so the second draft adds less than the first."""
    mtp = [estimate_decode(paper_decode(mtp_tokens=k), 32, 4096).timing.breakdown.get("mtp", 0)
           for k in (0, 1, 2)]
    assert mtp[0] == 0 < mtp[1] and 0 < mtp[2] - mtp[1] < mtp[1]


def test_first_draft_grows_with_acceptance():
    """More accepted positions per step means a longer first draft pass."""
    lo, hi = (estimate_decode(paper_decode(mtp_acceptance=a), 32, 4096).timing.breakdown["mtp"]
              for a in (0.0, 1.0))
    assert lo < hi


def test_mtp_module_costs_about_one_layer_and_a_head():
    """The MTP module is one decoder layer plus the shared LM head: its busy time per step is
    well under three of the main model's layers at the same batch."""
    t = estimate_decode(paper_decode(microbatch=False), 96, 4096).timing
    main_layer = (t.total_s - t.breakdown["mtp"] - t.breakdown["overhead"]
                  - t.breakdown["lm_head"]) / 61
    assert t.breakdown["mtp"] < 3 * main_layer


def test_overlap_loses_at_small_batch_and_says_so():
    """At 4 requests per NPU every weight is read once per microbatch: the overlap is slower
    than serial, still runs, and the notes quantify the loss."""
    on = estimate_decode(paper_decode(), 4, 4096)
    off = estimate_decode(paper_decode(microbatch=False), 4, 4096)
    assert on.step_s > off.step_s and on.timing.overlap_s > 0
    assert any("slower than serial" in n for n in on.timing.notes)


def test_gpu_two_batch_overlap_slows_small_batches():
    """On H800 (streams time-share the SMs, only communication overlaps) two microbatches cost
    more than they hide at small batches and pay off at large ones."""
    d = Deployment.build("h800", "deepseek-r1", 128, dp=128, ep=128, quant="fp8",
                         ep_buffer_tokens_per_die=256)
    gain = [estimate_decode(d.replace(microbatch=False), b, 4096).step_s
            / estimate_decode(d, b, 4096).step_s for b in (4, 128)]
    assert gain[0] < 1 < gain[1]


def test_single_request_per_group_runs_serially_and_says_why():
    """One request per DP group cannot be split into two microbatches."""
    t = decode_step_time(DecodeBatch(1, 1024), paper_decode())
    assert any("cannot be split" in n for n in t.notes)


@pytest.mark.parametrize("deployment", [
    {"hardware": "ascend-910c", "model": "deepseek-r1", "num_devices": 16, "dp": 4, "tp": 8,
     "ep": 32},
    {"hardware": "ascend-910c", "model": "llama-3.1-70b", "num_devices": 4, "dp": 1, "tp": 8},
    {"hardware": "h800", "model": "llama-3.1-70b", "num_devices": 8, "dp": 1, "tp": 8,
     "quant": "fp8"},
], ids=["mla-16-heads-per-die", "gqa-ascend", "gqa-h800"])
@pytest.mark.parametrize("kv_len", [4096, 32768])
def test_int8_kv_speeds_up_memory_bound_decode(deployment, kv_len):
    """Where decode attention is memory-bound (few heads per die, GQA), halving the KV bytes
    shortens the step, the more so at longer contexts."""
    bf16 = Deployment.build(**deployment)
    int8 = bf16.replace(kv_dtype="int8")
    a, b = (decode_step_time(DecodeBatch(16, kv_len), x) for x in (bf16, int8))
    assert a.bounds["attention"] == "memory"
    assert b.total_s < a.total_s
    assert a.breakdown["attention"] == pytest.approx(2 * b.breakdown["attention"], rel=0.01)


def test_long_context_widens_the_int8_kv_gain():
    """The INT8 KV saving grows with context length (KV reads grow with it)."""
    d = Deployment.build("ascend-910c", "llama-3.1-70b", 4, dp=1, tp=8)
    gains = [decode_step_time(DecodeBatch(16, kv), d).total_s
             - decode_step_time(DecodeBatch(16, kv), d.replace(kv_dtype="int8")).total_s
             for kv in (1024, 8192, 65536)]
    assert 0 < gains[0] < gains[1] < gains[2]


def test_all_heads_per_die_make_mla_decode_compute_bound():
    """With all 128 heads on one die, absorbed MLA does ~242 FLOPs per KV byte per query
    token, above the die's ridge: attention is compute-bound and INT8 KV adds capacity, not
    speed; split the heads over 8 dies and it turns memory-bound."""
    dp = paper_decode(mtp_tokens=0)
    assert decode_step_time(DecodeBatch(320 * 16, 8192), dp).bounds["attention"] == "compute"
    assert (decode_step_time(DecodeBatch(320 * 16, 8192), dp.replace(kv_dtype="int8")).total_s
            == pytest.approx(decode_step_time(DecodeBatch(320 * 16, 8192), dp).total_s))
    tp = Deployment.build("ascend-910c", "deepseek-r1", 16, dp=4, tp=8, ep=32)
    assert decode_step_time(DecodeBatch(16, 8192), tp).bounds["attention"] == "memory"


def test_attention_regime_moves_with_context():
    """With 128 heads per die, a very short context is memory-bound (each request's queries
    and outputs outweigh its KV) and a long one compute-bound; the time grows with context."""
    d = paper_decode(mtp_tokens=0)
    short, long = (decode_step_time(DecodeBatch(320 * 32, kv), d) for kv in (32, 8192))
    assert short.bounds["attention"] == "memory" and long.bounds["attention"] == "compute"
    assert short.breakdown["attention"] < long.breakdown["attention"]
