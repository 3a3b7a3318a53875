"""Cold and warm starts in a live cluster: workers load their weights before they serve.

`supernode up --model-load obs`: every worker registers as `loading`, is not routed to (a
request meanwhile gets 503 naming the load, with Retry-After), turns `ready` only after its
modelled load time at the cluster's speedup, and then serves; a decode instance added while
the first serves loads from EMS, which the first loads warmed; a worker restarted by the
supervisor loads again.
"""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from services.launcher import Cluster
from services.supervisor import RestartPolicy, Supervisor
from supernode.deployment import instance_deployment
from supernode.perf.load import load_time
from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e

SPEEDUP = 40.0
"""Model seconds per wall second: two OBS loads sharing the bucket take ~13 wall seconds."""


def workers(cluster: Cluster) -> dict[str, dict]:
    rows = httpx.get(f"{cluster.endpoint}/workers", timeout=5).json()
    return {w["worker_id"]: w for w in rows if w["kind"] != "ems"}


def wait_ready(cluster: Cluster, names: set[str], began: float,
               timeout_s: float = 180.0) -> dict[str, float]:
    """Poll /workers until every one of `names` is ready; the wall time each was first seen
    ready, since `began`. Each must be seen loading first."""
    ready_at: dict[str, float] = {}
    seen_loading: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while set(ready_at) != names:
        assert time.monotonic() < deadline, f"not ready in {timeout_s}s: {workers(cluster)}"
        for name, w in workers(cluster).items():
            if name not in names or name in ready_at:
                continue
            if w["state"] == "loading":
                seen_loading.add(name)
            else:
                assert name in seen_loading, f"{name} was never seen loading"
                ready_at[name] = time.monotonic() - began
        time.sleep(0.1)
    return ready_at


def test_workers_load_from_obs_then_serve_and_a_new_decode_loads_from_ems(tmp_path) -> None:
    """Loading workers are listed but not routed to; each turns ready no sooner than its
    modelled load time; then requests are served; a decode added later loads from EMS, far
    faster than from OBS."""
    began = time.monotonic()
    cluster = start_cluster(tmp_path, **{
        "model_load.source": "obs", "speedup": SPEEDUP,
        "cache.capacity_bytes": 2 * 10**12, "kv_payload_scale": 1e-5})
    try:
        rows = workers(cluster)
        assert {w["state"] for w in rows.values()} == {"loading"}, rows
        refused = httpx.post(f"{cluster.endpoint}/v1/completions", timeout=10, json={
            "model": "deepseek-r1", "prompt": "hi", "max_tokens": 2})
        assert refused.status_code == 503 and "still loading" in refused.text
        assert refused.headers["retry-after"]
        assert httpx.get(f"{cluster.endpoint}/health", timeout=5).json()["loading"] == {
            "prefill": 1, "decode": 1, "ems": 0}

        ready_at = wait_ready(cluster, {"prefill-0", "decode-0"}, began)
        rows = workers(cluster)
        for name, w in rows.items():
            load = w["model_load"]
            assert load["source"] == "obs" and load["model_id"] == "deepseek-r1@v1"
            assert ready_at[name] >= load["load_s"] / SPEEDUP, (name, ready_at, load)
        decode = instance_deployment(cluster.config, "decode")
        alone = load_time(decode, "obs").total_s
        assert rows["decode-0"]["model_load"]["load_s"] > 1.5 * alone  # shared the bucket

        client = openai.OpenAI(base_url=f"{cluster.endpoint}/v1", api_key="x", max_retries=0)
        done = client.completions.create(model="deepseek-r1", prompt="hello", max_tokens=3,
                                         extra_body={"ignore_eos": True})
        assert done.usage.completion_tokens == 3

        cluster.add_worker("decode", "decode-1")
        deadline = time.monotonic() + 120
        while workers(cluster).get("decode-1", {}).get("state") != "ready":
            assert time.monotonic() < deadline, workers(cluster)
            time.sleep(0.1)
        added = workers(cluster)["decode-1"]["model_load"]
        assert added["source"] == "ems"
        assert added["load_s"] < load_time(decode, "obs").total_s / 50
        log = (tmp_path / "scheduler.log").read_text()
        assert "decode-1 (decode) registered at" in log and "loading" in log.split(
            "decode-1 (decode) registered at")[1].splitlines()[0]
        done = client.completions.create(model="deepseek-r1", prompt="again", max_tokens=3,
                                         extra_body={"ignore_eos": True})
        assert done.usage.completion_tokens == 3
    finally:
        cluster.stop()


def test_a_restarted_worker_loads_its_model_again(tmp_path) -> None:
    """A decode killed after its load is restarted by the supervisor at the same address (the
    cluster token reaches it through its environment), registers as `loading` (counted under
    /health's `loading`, its pool degraded) and pays its modelled load again before it is ready
    and serves."""
    speedup = 100.0
    cluster = start_cluster(tmp_path, **{
        "model_load.source": "obs", "model_load.cache_in_ems": False, "speedup": speedup})
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while {w["state"] for w in workers(cluster).values()} != {"ready"}:
            assert time.monotonic() < deadline, workers(cluster)
            time.sleep(0.1)
        before = workers(cluster)["decode-0"]
        supervisor = Supervisor(cluster, RestartPolicy(), messages.append, time.monotonic())
        child = next(c for c in cluster.children if c.name == "decode-0")
        child.process.kill()
        child.process.wait()
        while not any(m.startswith("decode-0 restarted") for m in messages):
            assert time.monotonic() < deadline + 60, messages
            supervisor.poll(time.monotonic())
            time.sleep(0.05)
        restarted_at = time.monotonic()
        while workers(cluster).get("decode-0", {}).get("state") != "loading":
            assert time.monotonic() < restarted_at + 30, workers(cluster)
            time.sleep(0.05)
        health = httpx.get(f"{cluster.endpoint}/health", timeout=5).json()
        assert health["loading"]["decode"] == 1 and "decode" in health["degraded_pools"]
        while workers(cluster)["decode-0"]["state"] != "ready":
            assert time.monotonic() < restarted_at + 60, workers(cluster)
            time.sleep(0.05)
        ready_after_s = time.monotonic() - restarted_at
        after = workers(cluster)["decode-0"]
        alone = load_time(instance_deployment(cluster.config, "decode"), "obs").total_s
        assert after["address"] == before["address"]
        assert after["model_load"]["source"] == "obs"
        assert after["model_load"]["load_s"] >= 0.99 * alone
        assert ready_after_s >= 0.99 * alone / speedup
        client = openai.OpenAI(base_url=f"{cluster.endpoint}/v1", api_key="x", max_retries=0)
        done = client.completions.create(model="deepseek-r1", prompt="back", max_tokens=3,
                                         extra_body={"ignore_eos": True})
        assert done.usage.completion_tokens == 3
    finally:
        cluster.stop()
