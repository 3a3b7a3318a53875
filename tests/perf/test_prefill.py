"""Prefill mechanisms: the prefill all-to-all, the overlap (reported when it loses), GPUs."""

import itertools

import pytest

from supernode.perf import Deployment, PrefillBatch, estimate_prefill, prefill_time

from .conftest import paper_prefill


def test_prefill_all_to_all_runs_at_bulk_link_rates():
    """Prefill moves large buffers (SDMA on Ascend) at the measured UB write rate, faster per
    byte than the per-token decode kernels' fitted rate."""
    d = paper_prefill(eplb="perfect")
    t = prefill_time(PrefillBatch((4096,) * 64), d)
    wire_bytes = 8192 * 8 * d.dispatch_msg_bytes * 31 / 32 * d.model.num_moe_layers
    ub = d.hardware.die_link("ub")
    assert t.breakdown["dispatch"] == pytest.approx(wire_bytes / ub.effective_write_bytes_per_s,
                                                    rel=0.05)
    decode_rate = ub.bandwidth_bytes_per_s * d.calibration.dispatch_efficiency
    assert t.breakdown["dispatch"] < 0.6 * wire_bytes / decode_rate


@pytest.mark.parametrize("hardware,quant", [("ascend-910c", "int8"), ("h800", "fp8"),
                                            ("h100", "fp8")])
def test_overlap_gain_shrinks_with_prompt_length(hardware, quant):
    """Longer prompts add quadratic attention work behind which the same communication hides,
    so the two-microbatch gain falls with prompt length; it stays a gain at 16K tokens/device."""
    d = Deployment.build(hardware, "deepseek-r1", 16 if hardware == "ascend-910c" else 32,
                         ep=32, quant=quant, eplb="perfect")
    gains = [estimate_prefill(d, n, 16384).tokens_per_s_per_device
             / estimate_prefill(d.replace(microbatch=False), n, 16384).tokens_per_s_per_device
             for n in (1024, 4096, 8192)]
    assert gains[0] > gains[1] > gains[2] > 1


@pytest.mark.parametrize("hardware", ["h800", "h100"])
def test_gpu_prefill_throughput_falls_with_prompt_length(hardware):
    """GPU prefill is compute-bound at 16K tokens per GPU (the node-deduplicated all-to-all
    hides behind it), so longer prompts, with their quadratic attention, lower throughput."""
    d = Deployment.build(hardware, "deepseek-r1", 32, ep=32, quant="fp8", eplb="perfect")
    rates = [estimate_prefill(d, n, 16384).tokens_per_s_per_device for n in (1024, 2048, 4096, 8192)]
    assert all(a > b for a, b in itertools.pairwise(rates))
    assert rates[0] > 1.3 * rates[-1]


def test_small_prefill_overlap_can_lose_and_says_so():
    """A tiny batch split in two pays every fixed cost twice; if that is slower than serial,
    the notes say so."""
    d = paper_prefill()
    on = prefill_time(PrefillBatch((16,)), d)
    off = prefill_time(PrefillBatch((16,)), d.replace(microbatch=False))
    losing = any("slower than serial" in n for n in on.notes)
    assert losing == (on.total_s > off.total_s)
