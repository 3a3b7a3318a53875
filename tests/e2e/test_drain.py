"""SIGTERM on a worker drains it: out of routing at once, running requests finish there, and
only what outlives the drain timeout fails over."""

from __future__ import annotations

import asyncio
import re
import signal
import time

import httpx
import pytest

from services.launcher import Cluster
from tests.e2e.conftest import start_cluster
from tests.e2e.streaming import StreamResult, stream_completion

pytestmark = pytest.mark.e2e


def child(cluster: Cluster, name: str):
    return next(c for c in cluster.children if c.name == name)


async def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := await predicate():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


async def decoding(client: httpx.AsyncClient, cluster: Cluster) -> float:
    text = (await client.get(f"{cluster.endpoint}/metrics")).text
    match = re.search(r'supernode_requests\{model_name="deepseek-r1",state="decoding"\} (\S+)',
                      text)
    return float(match.group(1)) if match else 0.0


def body(i: int, max_tokens: int, prompt_len: int = 200) -> dict:
    return {"model": "deepseek-r1", "prompt": [4000 + i] * prompt_len, "max_tokens": max_tokens,
            "ignore_eos": True}


async def sigterm_under_load(cluster: Cluster, max_tokens: int
                             ) -> tuple[list[StreamResult], list[StreamResult]]:
    """Eight streams over both decodes; SIGTERM decode-0 once all are decoding; once the
    scheduler shows it draining, four new streams. Returns (old, new) results."""
    base = f"{cluster.endpoint}/v1"
    async with httpx.AsyncClient(timeout=300) as client:
        old = [asyncio.create_task(stream_completion(client, base, body(i, max_tokens)))
               for i in range(8)]
        await wait_for(lambda: _at_least(decoding(client, cluster), 8), 60, "8 decoding")
        child(cluster, "decode-0").process.send_signal(signal.SIGTERM)

        async def draining() -> bool:
            health = (await client.get(f"{cluster.endpoint}/health")).json()
            return health["draining"] == ["decode-0"]

        await wait_for(draining, 20, "decode-0 draining")
        new = [asyncio.create_task(stream_completion(client, base, body(100 + i, 20, 50)))
               for i in range(4)]
        return await asyncio.gather(*old), await asyncio.gather(*new)


async def _at_least(value, threshold: float) -> bool:
    return await value >= threshold


async def test_sigterm_drains_a_decode_without_failing_anything_over(tmp_path) -> None:
    """Streams running on the stopping decode all finish there with no failover; new ones go to
    the other decode without waiting on the draining one (no 2 s admission timeout); it
    leaves the registry and exits 0 once idle, well inside the drain timeout."""
    cluster = start_cluster(tmp_path, num_decode=2)
    try:
        old, new = await sigterm_under_load(cluster, max_tokens=150)
        assert all(r.usage["completion_tokens"] == 150 for r in old)
        assert {r.supernode["decode_worker"] for r in old} == {"decode-0", "decode-1"}
        assert all(r.supernode["num_failovers"] == 0 for r in old + new)
        assert all(r.supernode["decode_worker"] == "decode-1" for r in new)
        assert all(r.usage["completion_tokens"] == 20 for r in new)
        assert max(r.ttft_s for r in new) < 2.0
        assert child(cluster, "decode-0").process.wait(timeout=30) == 0
        log = child(cluster, "decode-0").log_path.read_text()
        assert "drained in" in log and "drain timeout" not in log
        metrics = httpx.get(f"{cluster.endpoint}/metrics", timeout=5).text
        assert "supernode_failovers_total 0.0" in metrics
        health = httpx.get(f"{cluster.endpoint}/health", timeout=5).json()
        assert health["workers"]["decode"] == 1 and health["draining"] == []
    finally:
        cluster.stop()


async def test_requests_outliving_the_drain_timeout_fail_over_and_complete(tmp_path) -> None:
    """With a 1 s drain timeout and streams that need longer, the stopping decode hands the
    rest off: they fail over to the other decode and still complete in full."""
    cluster = start_cluster(tmp_path, num_decode=2, drain_timeout_s=1.0)
    try:
        old, _ = await sigterm_under_load(cluster, max_tokens=1500)
        assert all(r.usage["completion_tokens"] == 1500 for r in old)
        moved = [r for r in old if r.supernode["num_failovers"] >= 1]
        assert moved and all(r.supernode["decode_worker"] == "decode-1" for r in moved)
        assert child(cluster, "decode-0").process.wait(timeout=30) == 0
        assert "drain timeout" in child(cluster, "decode-0").log_path.read_text()
    finally:
        cluster.stop()
