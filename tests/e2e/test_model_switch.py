"""Several served models live: `supernode up` with three models on two instances per pool.

Instance i of each pool starts with served model i mod 3, so the third model is held by none.
A request for it makes one prefill and one decode instance switch (the least recently used:
the ones the first model's requests never went to): each is listed `loading` the new model in
/workers, then `ready` with it, and the request is served; meanwhile requests for the first
model go on being served by the other instances. The switch shows in the scheduler's metrics.
"""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import openai
import pytest

from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e

MODELS = ["deepseek-r1", "deepseek-r1@v2", "deepseek-r1@v3"]
SPEEDUP = 200.0
"""Two 671 GB loads sharing the OBS bucket take ~540 model s: under 3 wall seconds."""


def workers(endpoint: str) -> dict[str, dict]:
    rows = httpx.get(f"{endpoint}/workers", timeout=5).json()
    return {w["worker_id"]: w for w in rows if w["kind"] != "ems"}


def complete(client: openai.OpenAI, model: str):
    return client.completions.create(model=model, prompt="hello", max_tokens=3, timeout=120,
                                     extra_body={"ignore_eos": True})


def test_a_request_for_an_unheld_model_switches_instances_while_others_serve(tmp_path) -> None:
    """The unheld model's request waits while one instance per pool switches (seen loading,
    then ready with the model) and is then served; the first model is served throughout by
    the instances that hold it; /v1/models lists every model."""
    cluster = start_cluster(tmp_path, served_models=MODELS, num_prefill=2, num_decode=2,
                            speedup=SPEEDUP)
    try:
        endpoint = cluster.endpoint
        listed = httpx.get(f"{endpoint}/v1/models", timeout=5).json()["data"]
        assert [m["id"] for m in listed] == MODELS
        assert {name: w["model"] for name, w in workers(endpoint).items()} == {
            "prefill-0": MODELS[0], "prefill-1": MODELS[1],
            "decode-0": MODELS[0], "decode-1": MODELS[1]}
        client = openai.OpenAI(base_url=f"{endpoint}/v1", api_key="x", max_retries=0)
        assert complete(client, MODELS[0]).usage.completion_tokens == 3

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            third = pool.submit(complete, client, MODELS[2])
            states = {"prefill-1": [], "decode-1": []}
            first_model_served = []
            deadline = time.monotonic() + 90
            while True:
                assert time.monotonic() < deadline, workers(endpoint)
                served = third.done()  # look once more after it is served: ready by then
                for name, w in workers(endpoint).items():
                    if name in states and (not states[name]
                                           or states[name][-1] != (w["state"], w["model"])):
                        states[name].append((w["state"], w["model"]))
                if served:
                    break
                if not first_model_served and states["decode-1"][-1][0] == "loading":
                    first_model_served.append(complete(client, MODELS[0]))
                time.sleep(0.05)
            assert third.result().usage.completion_tokens == 3
        for name in states:
            assert ("loading", MODELS[2]) in states[name], states
            assert states[name][-1] == ("ready", MODELS[2]), states
        (during,) = first_model_served
        assert during.usage.completion_tokens == 3
        assert during.model == MODELS[0]
        assert during.model_extra["supernode"]["decode_worker"] == "decode-0"
        assert during.model_extra["supernode"]["prefill_worker"] == "prefill-0"
        assert third.result().model_extra["supernode"]["decode_worker"] == "decode-1"

        metrics = httpx.get(f"{endpoint}/metrics", timeout=5).text
        for pool_name in ("prefill", "decode"):
            assert (f'supernode_model_switches_total{{model="{MODELS[2]}",pool="{pool_name}",'
                    f'source="obs"}} 1.0') in metrics
        own = httpx.get(f"http://{workers(endpoint)['decode-1']['metrics_address']}/metrics",
                        timeout=5).text  # the switched instance's series follow its model
        usage = [line for line in own.splitlines()
                 if line.startswith("vllm:kv_cache_usage_perc{")]
        assert len(usage) == 1 and f'model_name="{MODELS[2]}"' in usage[0], usage
        assert f'vllm:generation_tokens_total{{engine="decode-1",model_name="{MODELS[2]}"}} ' \
            in own
        assert "switched from deepseek-r1@v2 to deepseek-r1@v3" in (
            tmp_path / "scheduler.log").read_text()
        missing = httpx.post(f"{endpoint}/v1/completions", timeout=10, json={
            "model": "deepseek-r1@v9", "prompt": "x", "max_tokens": 2})
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "model"
    finally:
        cluster.stop()
