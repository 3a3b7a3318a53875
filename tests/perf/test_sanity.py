"""Other models, GPU profiles and small instances: finite, plausible, never beating the roofline."""

import itertools
import math
import time

import pytest

from supernode.perf import (
    DecodeBatch,
    Deployment,
    PrefillBatch,
    decode_step_time,
    estimate_decode,
    kv_capacity_tokens,
    memory_budget,
    prefill_time,
    weight_bytes_per_die,
)

GPU_AND_OTHER = [
    {"hardware": "h100", "model": "llama-3.1-70b", "num_devices": 8, "dp": 1, "tp": 8, "quant": "fp8"},
    {"hardware": "h100", "model": "qwen3-235b-a22b", "num_devices": 8, "ep": 8, "quant": "fp8"},
    {"hardware": "h800", "model": "deepseek-r1", "num_devices": 144, "ep": 144, "quant": "fp8", "mtp_tokens": 1},
    {"hardware": "ascend-910c", "model": "qwen3-235b-a22b", "num_devices": 8, "ep": 16},
    {"hardware": "ascend-910c", "model": "llama-3.1-70b", "num_devices": 4, "dp": 2, "tp": 4},
]


def _roofline_floor_s(d: Deployment, flops_per_die: float) -> float:
    """Nothing beats reading each die's weights once at peak HBM, or its FLOPs at peak compute."""
    hw = d.hardware
    return max(weight_bytes_per_die(d) * 0.5 / hw.hbm_bandwidth_bytes_per_s_per_die,
               flops_per_die / hw.peak_flops(d.quant))


@pytest.mark.parametrize("spec", GPU_AND_OTHER, ids=lambda s: f"{s['hardware']}-{s['model']}")
@pytest.mark.parametrize("batch_per_device", [1, 16, 64])
def test_decode_plausible_and_above_roofline(spec, batch_per_device):
    """Decode steps are finite, take 1-500 ms, and are no faster than the roofline floor."""
    d = Deployment.build(**spec)
    e = estimate_decode(d, batch_per_device, 2048)
    assert math.isfinite(e.step_s) and 1e-3 < e.step_s < 0.5
    tokens_per_die = max(1, batch_per_device * d.num_devices // d.dp) * d.tokens_per_step
    flops = 2 * d.model.activated_params_per_token * tokens_per_die / d.tp
    assert e.step_s >= _roofline_floor_s(d, flops)
    assert 0 < e.timing.compute_util < 1 and 0 < e.timing.hbm_util < 1


@pytest.mark.parametrize("spec", GPU_AND_OTHER, ids=lambda s: f"{s['hardware']}-{s['model']}")
def test_prefill_plausible_and_above_roofline(spec):
    """Prefill of 8K tokens per device is finite and below the compute peak."""
    d = Deployment.build(**spec)
    batch = PrefillBatch((2048,) * (4 * d.num_devices))
    t = prefill_time(batch, d)
    flops = 2 * d.model.activated_params_per_token * batch.num_computed_tokens / d.num_dies
    assert math.isfinite(t.total_s) and t.total_s >= flops / d.hardware.peak_flops(d.quant)
    assert t.compute_util < 1


def test_h800_dispatch_slower_than_cloudmatrix_ub():
    """EP across nodes rides 50 GB/s InfiniBand on H800 but 196 GB/s/die UB on CloudMatrix."""
    h800 = estimate_decode(Deployment.build("h800", "deepseek-r1", 144, ep=144, quant="fp8"), 64, 4096)
    cm = estimate_decode(Deployment.build("ascend-910c", "deepseek-r1", 72, ep=144), 128, 4096)
    per_token = lambda e, n: (e.timing.breakdown["dispatch"] + e.timing.breakdown["combine"]) / n
    assert per_token(h800, 64) > per_token(cm, 64)


SMALL_DECODE = [(2, 4, 4), (2, 4, 2), (4, 8, 8), (4, 8, 4)]  # devices, dp, ep


@pytest.mark.parametrize("devices,dp,ep", SMALL_DECODE)
def test_small_decode_instances_sensible(devices, dp, ep):
    """Emulator-sized decode instances (several experts per rank, batch 1..64) give finite,
    monotone steps, a positive KV capacity and a named memory clamp."""
    d = Deployment.build("ascend-910c", "deepseek-r1", devices, dp=dp, ep=ep, mtp_tokens=1)
    steps = [decode_step_time(DecodeBatch(n, 1024), d).total_s for n in range(1, 65)]
    assert all(math.isfinite(s) and 0 < s < 1 for s in steps)
    assert all(b >= a for a, b in itertools.pairwise(steps))
    assert kv_capacity_tokens(d) > 0
    assert not memory_budget(d).fits
    assert any(n.startswith("memory:") for n in decode_step_time(DecodeBatch(8, 1024), d).notes)


def test_small_prefill_instance_sensible():
    """A 2-device EP4 prefill instance: finite, grows with tokens, superlinear in prompt length."""
    d = Deployment.build("ascend-910c", "deepseek-r1", 2, ep=4)
    times = [prefill_time(PrefillBatch((n,)), d).total_s for n in (16, 256, 1024, 4096, 8192)]
    assert all(math.isfinite(t) and t > 0 for t in times)
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[-1] / times[-2] > 2 * 0.99


def test_strict_memory_raises_with_reason():
    """With strict_memory, weights that do not fit raise ValueError naming the cause."""
    with pytest.raises(ValueError, match="weights"):
        Deployment.build("ascend-910c", "deepseek-r1", 2, ep=4, strict_memory=True)


def test_paper_decode_fits_and_holds_the_batch():
    """The 160-NPU decode instance fits its weights and holds 96 req/NPU x 4K of KV."""
    d = Deployment.build("ascend-910c", "deepseek-r1", 160, dp=320, ep=320, mtp_tokens=1)
    assert memory_budget(d).fits
    assert kv_capacity_tokens(d) >= 96 * 160 * 4096


@pytest.mark.parametrize("changes,field", [
    ({"ep": 3}, "ep"), ({"dp": 8}, "dp"), ({"dp": 2, "tp": 1}, "dp\\*tp"),
    ({"quant": "fp8"}, "fp8"), ({"eplb": 0.5}, "eplb"), ({"mtp_acceptance": 1.5}, "mtp_acceptance"),
    ({"mtp_tokens": 9}, "mtp_tokens"),
])
def test_invalid_deployments_name_the_field(changes, field):
    """Bad parallelism, datatypes or MTP settings raise ValueError naming the field."""
    fields = {"ep": 4} | changes
    with pytest.raises(ValueError, match=field):
        Deployment.build("ascend-910c", "deepseek-r1", 2, **fields)


def test_dense_model_rejects_ep():
    """A dense model has no experts to parallelise."""
    with pytest.raises(ValueError, match="ep"):
        Deployment.build("h100", "llama-3.1-70b", 8, dp=1, tp=8, ep=8)


def test_context_beyond_model_maximum_raises():
    """Decode or prefill past max_context_len raises, naming the limit."""
    d = Deployment.build("ascend-910c", "deepseek-r1", 2, ep=4)
    with pytest.raises(ValueError, match="max_context_len"):
        decode_step_time(DecodeBatch(1, 10**6), d)
    with pytest.raises(ValueError, match="max_context_len"):
        prefill_time(PrefillBatch((10**6,)), d)


def test_decode_call_is_fast():
    """An uncached decode estimate costs well under a millisecond (worker calls it per step)."""
    d = Deployment.build("ascend-910c", "deepseek-r1", 4, ep=8, mtp_tokens=1)
    start = time.perf_counter()
    for i in range(300):
        decode_step_time(DecodeBatch(1 + i % 64, 1000.5 + i), d)
    assert (time.perf_counter() - start) / 300 < 1e-3
