"""Several served models in the simulator: start-up loads and switches, priced as modelled."""

from __future__ import annotations

import pytest

from supernode.config import load_config
from supernode.deployment import instance_deployment
from supernode.hardware.storage import load_storage
from supernode.lifecycle.request import Request
from supernode.perf import PrefillBatch, kv_handoff_times, prefill_time
from supernode.perf.load import load_plan, model_image, switch_time
from tests.sim.helpers import run_requests

MODELS = ["deepseek-r1", "deepseek-r1@v2"]


def request(request_id: str, model: str, at: float, prompt: int = 512) -> Request:
    return Request(request_id, prompt, 4, seed=1, arrived_at=at, ignore_eos=True, model=model)


def ttft_alone(config, prompt: int) -> float:
    """An idle cluster's time to first token: one prefill batch and its KV hand-off."""
    prefill = instance_deployment(config, "prefill")
    kv = prompt * prefill.model.kv_bytes_per_token(prefill.kv_dtype)
    (handoff,) = kv_handoff_times([kv], prefill)
    return prefill_time(PrefillBatch((prompt,), (0,)), prefill).total_s + handoff.total_s


def test_a_request_for_an_unheld_model_waits_one_switch_priced_by_the_load_model() -> None:
    """Two prefill instances hold A and B, the only decode instance A: a request for B makes
    that decode instance switch (from OBS, nothing cached) and its first token comes the
    switch's price after its arrival, plus an idle cluster's TTFT. One switch, no more."""
    config = load_config(None, {"served_models": MODELS, "num_prefill": 2, "num_decode": 1})
    recorder = run_requests(config, [request("b", MODELS[1], 1.0)])
    b = recorder.done["b"]
    assert not b.error and b.num_output_tokens == 4
    assert (b.prefill_worker_id, b.decode_worker_id) == ("prefill-1", "decode-0")
    decode = instance_deployment(config, "decode")
    priced = switch_time(decode, "obs").total_s
    assert b.first_token_at - b.arrived_at == pytest.approx(priced + ttft_alone(config, 512),
                                                            rel=1e-9)
    ((done, source),) = recorder.switches
    assert (done.switch.worker_id, done.switch.to.name, source) == ("decode-0", MODELS[1], "obs")
    assert done.seconds == pytest.approx(priced, rel=1e-9)


def test_the_instance_drains_before_it_switches_and_the_old_model_waits_its_turn() -> None:
    """A request for A in flight keeps its decode instance until it ends; the switch to B
    begins then; a later request for A waits for B's request to be routed, then for the
    switch back."""
    config = load_config(None, {"served_models": MODELS, "num_prefill": 2, "num_decode": 1})
    recorder = run_requests(config, [request("a1", MODELS[0], 0.0, prompt=4096),
                                     request("b", MODELS[1], 0.01),
                                     request("a2", MODELS[0], 0.02)])
    a1, b, a2 = (recorder.done[r] for r in ("a1", "b", "a2"))
    assert not (a1.error or b.error or a2.error)
    (to_b, _), (to_a, _) = recorder.switches
    loads = {(w, m): (start, end) for w, m, _, start, end in recorder.loads}
    assert loads[("decode-0", MODELS[1])][0] == pytest.approx(a1.finished_at)
    assert to_b.ready_at <= b.first_token_at
    assert to_a.switch.decided_at >= b.first_token_at - ttft_alone(config, 512) - 1e-9
    assert a2.first_token_at > to_a.ready_at


def test_instances_load_their_model_before_serving_sharing_the_bucket() -> None:
    """With model_load.source obs every instance registers loading: a request meanwhile gets
    503; each is ready when the two loads sharing the OBS bucket (max-min fair) are over."""
    config = load_config(None, {"model_load.source": "obs"})
    recorder = run_requests(config, [request("early", "", 1.0)])
    assert recorder.done["early"].error.startswith("HTTP 503")
    plans = {role: load_plan(instance_deployment(config, role), "obs",
                             load_storage(config.hardware))
             for role in ("prefill", "decode")}
    bucket = plans["prefill"].resource_bytes_per_s
    small, large = sorted(p.stream_bytes for p in plans.values())
    ends = {w: end for w, _, source, _, end in recorder.loads if source == "obs"}
    decode = plans["decode"]
    assert decode.stream_bytes == large  # the decode image carries the MTP layers
    assert ends["decode-0"] == pytest.approx(
        (small + large) / bucket + decode.latency_s + decode.tail_s, rel=1e-9)
    prefill = plans["prefill"]
    assert ends["prefill-0"] == pytest.approx(
        2 * small / bucket + prefill.latency_s + prefill.tail_s, rel=1e-9)


def test_with_a_prefetch_instances_wait_for_ems_and_read_it_from_there() -> None:
    """model_load.prefetch: EMS pulls each image from OBS once; the instances load from EMS
    afterwards, far sooner than the shared OBS loads would allow."""
    config = load_config(None, {"model_load.source": "obs", "model_load.prefetch": True,
                                "cache.capacity_bytes": 2 * 10**12})
    recorder = run_requests(config, [])
    sources = {w: source for w, _, source, _, _ in recorder.loads}
    assert sources == {"prefill-0": "ems", "decode-0": "ems"}
    images = sum(model_image(instance_deployment(config, r)).model_bytes
                 for r in ("prefill", "decode"))
    bucket = load_storage(config.hardware).obs_bucket.effective_bandwidth_bytes_per_s
    last = max(end for *_, end in recorder.loads)
    assert images / bucket < last < images / bucket + 10.0
