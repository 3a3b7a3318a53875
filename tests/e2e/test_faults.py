"""Workers dying: routing drops them after their lease; in-flight requests fail over."""

from __future__ import annotations

import asyncio
import re
import signal
import time

import httpx
import pytest

from services.launcher import Cluster
from tests.e2e.conftest import start_cluster
from tests.e2e.streaming import stream_completion

pytestmark = pytest.mark.e2e


def child(cluster: Cluster, name: str):
    return next(c for c in cluster.children if c.name == name)


async def streams_with_a_kill(cluster: Cluster, bodies: list[dict], victim: str,
                              after_s: float) -> list:
    """Run the streams; SIGKILL the child `victim` after `after_s`; return every stream's result."""
    base = f"{cluster.endpoint}/v1"
    async with httpx.AsyncClient(timeout=120) as client:
        streams = [asyncio.create_task(stream_completion(client, base, body)) for body in bodies]
        await asyncio.sleep(after_s)
        process = child(cluster, victim).process
        process.send_signal(signal.SIGKILL)
        process.wait()
        return await asyncio.gather(*streams)


def health(cluster: Cluster) -> dict[str, int]:
    return httpx.get(f"{cluster.endpoint}/health", timeout=5).json()["workers"]


async def test_killed_decode_leaves_routing_and_streams_fail_over(tmp_path) -> None:
    """SIGKILL one of two decode workers mid-stream: every stream still completes in full
    (the lost ones re-prefilled on the other decode), and the dead worker leaves the registry
    once its heartbeat lease lapses."""
    cluster = start_cluster(tmp_path, num_decode=2)
    try:
        results = await streams_with_a_kill(cluster, [
            {"model": "deepseek-r1", "prompt": [1000 + i] * 300, "max_tokens": 300,
             "ignore_eos": True} for i in range(6)], victim="decode-0", after_s=1.0)
        assert all(r.usage["completion_tokens"] == 300 for r in results)
        assert all(len(r.text.split()) == 300 for r in results)
        assert any(r.supernode["num_failovers"] >= 1 for r in results)
        assert all(r.supernode["decode_worker"] == "decode-1" for r in results)
        deadline = time.monotonic() + 10
        while health(cluster)["decode"] != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert health(cluster)["decode"] == 1
        metrics = httpx.get(f"{cluster.endpoint}/metrics", timeout=5).text
        assert "supernode_failovers_total" in metrics
    finally:
        cluster.stop()


async def test_no_workers_of_a_kind_is_a_503(tmp_path) -> None:
    """With the only prefill worker dead and its lease lapsed, requests get 503 + Retry-After,
    and /health says the cluster is degraded."""
    cluster = start_cluster(tmp_path)
    try:
        victim = child(cluster, "prefill-0").process
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        deadline = time.monotonic() + 10
        while health(cluster)["prefill"] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        r = httpx.post(f"{cluster.endpoint}/v1/completions",
                       json={"model": "deepseek-r1", "prompt": "hi"}, timeout=10)
        assert r.status_code == 503 and "prefill" in r.json()["error"]["message"]
        assert "retry-after" in r.headers
        assert httpx.get(f"{cluster.endpoint}/health", timeout=5).status_code == 503
    finally:
        cluster.stop()


async def test_client_disconnect_frees_the_request(tmp_path) -> None:
    """A client that hangs up mid-stream has its request aborted on decode (KV freed)."""
    cluster = start_cluster(tmp_path)
    try:
        base = f"{cluster.endpoint}/v1"
        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream("POST", f"{base}/completions", json={
                    "model": "deepseek-r1", "prompt": "x " * 100, "max_tokens": 5000,
                    "ignore_eos": True, "stream": True}) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        break
        deadline = time.monotonic() + 5
        text = ""
        while time.monotonic() < deadline:
            text = httpx.get(f"{cluster.endpoint}/metrics", timeout=5).text
            if 'finished_reason="abort",model_name="deepseek-r1"} 1.0' in text:
                break
            await asyncio.sleep(0.1)
        assert 'vllm:request_success_total{finished_reason="abort",model_name="deepseek-r1"} 1.0' in text
        assert 'supernode_requests{model_name="deepseek-r1",state="decoding"} 0.0' in text
        targets = httpx.get(f"{cluster.endpoint}/sd/targets", timeout=5).json()
        (decode,) = [t["targets"][0] for t in targets if t["labels"]["role"] == "decode"]
        decode_metrics = ""
        while time.monotonic() < deadline + 5:
            decode_metrics = httpx.get(f"http://{decode}/metrics", timeout=5).text
            if re.search(r'finished_reason="abort"[^}]*\} 1\.0', decode_metrics):
                break
            await asyncio.sleep(0.1)
        assert 'vllm:num_requests_running{engine="decode-0",model_name="deepseek-r1"} 0.0' in decode_metrics
        assert 'vllm:kv_cache_usage_perc{engine="decode-0",model_name="deepseek-r1"} 0.0' in decode_metrics
    finally:
        cluster.stop()


async def test_concurrent_arrivals_spread_over_decode_instances(tmp_path) -> None:
    """Sixteen requests arriving together are balanced over two idle decode instances by the
    least-loaded policy (the scheduler counts a request against an instance before its
    admission RPC returns)."""
    cluster = start_cluster(tmp_path, num_decode=2)
    try:
        base = f"{cluster.endpoint}/v1"
        async with httpx.AsyncClient(timeout=60) as client:
            results = await asyncio.gather(*(stream_completion(client, base, {
                "model": "deepseek-r1", "prompt": [2000 + i] * 64, "max_tokens": 20,
                "ignore_eos": True}) for i in range(16)))
        served = [r.supernode["decode_worker"] for r in results]
        assert sorted(set(served)) == ["decode-0", "decode-1"]
        assert abs(served.count("decode-0") - served.count("decode-1")) <= 2
    finally:
        cluster.stop()


async def test_killed_prefill_mid_request_fails_over_to_the_other(tmp_path) -> None:
    """SIGKILL one of two prefill workers while long prompts are being prefilled: every request
    still completes (re-prefilled on the survivor, which the dead one is routed around)."""
    cluster = start_cluster(tmp_path, num_prefill=2, speedup=0.25)
    try:
        results = await streams_with_a_kill(cluster, [
            {"model": "deepseek-r1", "prompt": [3000 + i] * 16_000, "max_tokens": 8,
             "ignore_eos": True} for i in range(6)], victim="prefill-0", after_s=0.5)
        assert all(r.usage["completion_tokens"] == 8 for r in results)
        assert {r.supernode["prefill_worker"] for r in results} == {"prefill-1"}
        assert any(r.supernode["num_failovers"] >= 1 for r in results)
    finally:
        cluster.stop()
