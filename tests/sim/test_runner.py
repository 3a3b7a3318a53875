"""The simulator against the hardware model it drives, and against itself."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.config import LoadConfig
from loadgen.types import SampleRequest
from loadgen.workloads import RandomWorkload
from services.scheduler.prompts import text_ids
from supernode.config import ApiConfig, ClusterConfig, load_config
from supernode.deployment import instance_deployment
from supernode.models import load_model
from supernode.perf import (
    DecodeBatch,
    PrefillBatch,
    decode_step_time,
    kv_handoff_times,
    prefill_time,
)
from supernode.sim.runner import simulate_samples
from supernode.tokenizer import make_tokenizer
from tests.sim.helpers import run_sim


def test_a_seed_fixes_the_whole_run() -> None:
    """The same seed gives identical results and duration; another seed gives other results."""
    a, b = run_sim(seed=7, rate=20.0), run_sim(seed=7, rate=20.0)
    assert a.results == b.results and a.duration_s == b.duration_s
    assert run_sim(seed=8, rate=20.0).results != a.results


def test_one_request_sees_the_hardware_model() -> None:
    """Idle cluster, no MTP: TTFT = prefill batch + RDMA KV transfer; each decode step is the
    model's step for batch 1 at the request's KV length, one token per step."""
    prompt_len, num_tokens = 2048, 16
    outcome = run_sim(num_prompts=1, input_len=prompt_len, output_len=num_tokens,
                      **{"decode.mtp_tokens": 0})
    (r,) = outcome.results
    config = load_config(None, {"decode.mtp_tokens": 0})
    prefill, decode = instance_deployment(config, "prefill"), instance_deployment(config, "decode")
    kv_bytes = prompt_len * prefill.model.kv_bytes_per_token(prefill.kv_dtype)
    (handoff,) = kv_handoff_times([kv_bytes], prefill)
    ttft_s = prefill_time(PrefillBatch((prompt_len,), (0,)), prefill).total_s + handoff.total_s
    steps_s = [decode_step_time(DecodeBatch(1, prompt_len + k), decode).total_s
               for k in range(1, num_tokens)]
    assert r.success and r.output_tokens == num_tokens
    assert r.ttft_s == pytest.approx(ttft_s, rel=1e-9)
    assert r.itls_s == pytest.approx(steps_s, rel=1e-9)
    assert r.tpot_s == pytest.approx(sum(steps_s) / (num_tokens - 1), rel=1e-9)
    assert r.server_details["modelled_ttft_s"] == pytest.approx(ttft_s, rel=1e-9)
    assert r.server_details["modelled_tpot_s"] == pytest.approx(r.tpot_s, rel=1e-9)


def test_mtp_puts_several_tokens_in_one_step() -> None:
    """With MTP a step emits several tokens: fewer chunks than tokens, each gap one decode step,
    TPOT as modelled."""
    (r,) = run_sim(num_prompts=1, input_len=512, output_len=64).results
    step_s = decode_step_time(DecodeBatch(1, 600), instance_deployment(ClusterConfig(),
                                                                       "decode")).total_s
    assert r.output_tokens == 64 and len(r.itls_s) < 63
    assert r.itls_s == pytest.approx([step_s] * len(r.itls_s), rel=0.01)
    assert r.tpot_s == pytest.approx(r.server_details["modelled_tpot_s"], rel=1e-9)


def test_queueing_grows_ttft_with_rate() -> None:
    """Without load shedding, mean TTFT rises with the request rate, past twice the idle value
    once prefill saturates."""
    mean_ttfts = [float(np.mean([r.ttft_s for r in run_sim(
        num_prompts=200, rate=rate, input_len=4096, output_len=8,
        **{"scheduler.ttft_slo_s": 0}).results])) for rate in (2.0, 40.0, 120.0)]
    assert mean_ttfts[0] < mean_ttfts[1] < mean_ttfts[2]
    assert mean_ttfts[2] > 2 * mean_ttfts[0]


def test_overload_is_shed_and_the_rest_meet_the_ttft_bound() -> None:
    """At three times what prefill sustains, the excess gets 429 at arrival (no time spent),
    and the requests let in meet scheduler.ttft_slo_s (the shedder predicts from the model)."""
    slo_s = 1.0
    outcome = run_sim(num_prompts=600, rate=3 * 22.5, input_len=4096, output_len=8,
                      **{"scheduler.ttft_slo_s": slo_s})
    shed = [r for r in outcome.results if "HTTP 429" in r.error]
    ok = [r for r in outcome.results if r.success]
    assert len(shed) + len(ok) == len(outcome.results)
    assert 0.3 * len(outcome.results) < len(shed) < 0.9 * len(outcome.results)
    assert all(r.latency_s == 0 for r in shed)
    assert sum(r.ttft_s <= slo_s for r in ok) >= 0.95 * len(ok)


def test_speedup_changes_no_reported_figure() -> None:
    """Rates and reported times are model seconds (as `supernode bench --speedup` reports), so
    the config's speedup, which only stretches a live cluster's wall clock, changes nothing."""
    full, slow = run_sim(seed=3, rate=8.0), run_sim(seed=3, rate=8.0, speedup=0.1)
    assert slow.results == full.results
    assert slow.duration_s == full.duration_s


@pytest.mark.parametrize("policy", ["least-loaded", "kv-affinity"])
def test_a_shared_prefix_is_fetched_not_recomputed(policy: str) -> None:
    """Prompts sharing a 3840-token prefix: after the first, 30 blocks come from the cache
    (EMS, or the instance's own under kv-affinity) and TTFT drops."""
    samples = RandomWorkload(256, 4, 0.0, 3840).build(20, 0)
    load = LoadConfig(request_rate=4.0)
    serial = {"prefill.microbatch": False}  # a lone prompt: overlap would read weights twice
    warm = simulate_samples(load_config(None, {"routing_policy": policy, "num_prefill": 2,
                                               **serial}),
                            samples, load, ignore_eos=True, detailed=True)
    cold = simulate_samples(load_config(None, {"cache.enabled": False, **serial}), samples, load,
                            ignore_eos=True, detailed=True)
    assert warm.results[0].ttft_s == pytest.approx(cold.results[0].ttft_s)
    warm_ttft = np.mean([r.ttft_s for r in warm.results[1:]])
    assert warm_ttft < 0.8 * np.mean([r.ttft_s for r in cold.results[1:]])


def test_a_request_deadline_ends_waiting_requests_with_408() -> None:
    """With scheduler.request_timeout_s, a request still without its first token at its
    deadline ends with 408 wherever it waits; every one served got its first token in time."""
    timeout_s = 0.3
    outcome = run_sim(num_prompts=300, rate=60.0, input_len=4096, output_len=8,
                      **{"scheduler.ttft_slo_s": 0, "scheduler.request_timeout_s": timeout_s})
    timed_out = [r for r in outcome.results if "HTTP 408" in r.error]
    ok = [r for r in outcome.results if r.success]
    assert timed_out and ok and len(timed_out) + len(ok) == len(outcome.results)
    assert all(r.ttft_s <= timeout_s + 1e-9 for r in ok)
    assert all(r.latency_s == pytest.approx(timeout_s) for r in timed_out)


@pytest.mark.parametrize("model", ["deepseek-r1", "qwen3-235b-a22b"])
async def test_a_text_prompt_counts_as_the_live_scheduler_counts_it(model: str) -> None:
    """A text prompt is as many tokens in the simulator as the live /v1/completions path
    makes of it (the model's own tokenizer, its BOS included); an id prompt is its ids."""
    text = "人工智能是计算机科学的一个分支 3141592653 def area(r): return r ** 2"
    config = load_config(None, {"model": model, "decode.mtp_tokens": 0})
    tokenizer = make_tokenizer(None, load_model(model).vocab_size, model)
    live = await text_ids(tokenizer, ApiConfig(), text, True)
    ids = (1000, 1001, 1002)
    outcome = simulate_samples(config, [SampleRequest(text, 1, 4), SampleRequest(ids, 3, 4)],
                               LoadConfig(request_rate=1.0, seed=0), ignore_eos=True,
                               detailed=True)
    assert [r.prompt_len for r in outcome.results] == [len(live), 3]
