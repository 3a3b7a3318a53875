"""Client-observed latency equals the hardware model's, which is the emulator's whole point.

Tolerances. TPOT: decode steps wait on chained deadlines, so per-step jitter does not add up;
the mean over a stream must be within 5% (+1 ms) of the modelled TPOT of the same request.
TTFT: the modelled TTFT (queue + cache fetch + prefill batch + KV transfer) plus the real
cost of the emulator's hops (HTTP parse, Admit, Prefill and KV-transfer RPCs: measured 5-20 ms
on a 2-core machine, more when it is loaded) must cover the observed value; allow 10% + 100 ms,
never less than modelled.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from supernode.config import ClusterConfig
from supernode.deployment import instance_deployment
from supernode.perf import PrefillBatch, prefill_time
from tests.e2e.streaming import stream_completion

pytestmark = pytest.mark.e2e


def prompt(n: int, salt: int) -> list[int]:
    return [1000 + (salt * 7919 + i) % 100_000 for i in range(n)]


async def test_ttft_and_tpot_match_the_model(base_url: str) -> None:
    """Observed TTFT and TPOT track the modelled figures of each request."""
    async with httpx.AsyncClient(timeout=60) as client:
        for i, prompt_len in enumerate((512, 4096)):
            r = await stream_completion(client, base_url, {
                "model": "deepseek-r1", "prompt": prompt(prompt_len, 100 + i),
                "max_tokens": 48, "ignore_eos": True})
            modelled_ttft, modelled_tpot = r.supernode["modelled_ttft_s"], r.supernode[
                "modelled_tpot_s"]
            assert r.usage["completion_tokens"] == 48
            assert modelled_ttft <= r.ttft_s <= modelled_ttft * 1.10 + 0.100
            assert r.tpot_s == pytest.approx(modelled_tpot, rel=0.05, abs=0.001)


async def test_modelled_ttft_is_the_prefill_model(base_url: str) -> None:
    """An idle cluster's modelled TTFT is the hardware model's prefill time plus the
    modelled KV transfer, for the default deployment (no queueing, no cache hit)."""
    async with httpx.AsyncClient(timeout=60) as client:
        r = await stream_completion(client, base_url, {
            "model": "deepseek-r1", "prompt": prompt(2048, 7), "max_tokens": 4,
            "ignore_eos": True})
    batch_s = prefill_time(PrefillBatch((2048,), (0,)),
                           instance_deployment(ClusterConfig(), "prefill")).total_s
    assert r.usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert batch_s < r.supernode["modelled_ttft_s"] < batch_s * 1.2


async def test_concurrent_streams_keep_their_tpot(base_url: str) -> None:
    """Forty concurrent streams each see their modelled TPOT (batching shows in the model)."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as c:
        results = await asyncio.gather(*(stream_completion(c, base_url, {
            "model": "deepseek-r1", "prompt": prompt(256, 500 + i), "max_tokens": 40,
            "ignore_eos": True}) for i in range(40)))
    for r in results:
        assert r.usage["completion_tokens"] == 40
        assert r.tpot_s == pytest.approx(r.supernode["modelled_tpot_s"], rel=0.08, abs=0.002)


async def test_health_reports_the_recent_lag(base_url: str) -> None:
    """/health counts each first token in `lag` (what `supernode up` watches to warn that the
    host cannot keep the speedup)."""
    endpoint = base_url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=60) as client:
        before = (await client.get(f"{endpoint}/health")).json()["lag"]
        for i in range(3):
            await stream_completion(client, base_url, {
                "model": "deepseek-r1", "prompt": prompt(256, 300 + i), "max_tokens": 2,
                "ignore_eos": True})
        after = (await client.get(f"{endpoint}/health")).json()["lag"]
    assert after["recent"] == min(before["recent"] + 3, 200)
    assert 0 <= after["late"] <= after["recent"]
    assert after["max_s"] >= 0.0
