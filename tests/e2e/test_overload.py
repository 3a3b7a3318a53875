"""Overload is refused early, the admitted requests keep their TTFT, memory stays flat, and the
system recovers (issue 11's admission control, live).

Three times the prefill pool's sustainable rate for a bounded time against `supernode up`'s
default deployment with `scheduler.ttft_slo_s` = 1 s: the scheduler predicts each arrival's
TTFT from the hardware model and the work queued ahead of it, and answers the excess at once
with 429, Retry-After and OpenAI error JSON, before any stream starts.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import pytest

from loadgen.arrivals import arrival_offsets_s
from loadgen.workloads import RandomWorkload
from services.launcher import Cluster
from tests.e2e.conftest import start_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SPEEDUP = 0.5
SLO_S = 1.0
SUSTAINABLE_RATE = 22.5
"""4,096-token prompts per model second one default prefill instance prefills (the model's)."""
OVERLOAD_S = 8.0
"""Model seconds of overload."""
RSS_GROWTH_BYTES = 150 * 2**20


@dataclass
class Outcome:
    status: int
    response_s: float
    """Wall seconds from sending to the response's status line."""
    ttft_s: float | None
    """Model seconds from sending to the first token (200 only)."""
    retry_after: str | None
    error_type: str | None


async def _one(session: aiohttp.ClientSession, url: str, prompt: tuple[int, ...]) -> Outcome:
    body = {"model": "deepseek-r1", "prompt": list(prompt), "max_tokens": 8, "stream": True,
            "ignore_eos": True}
    started = time.perf_counter()
    async with session.post(url, json=body) as resp:
        response_s = time.perf_counter() - started
        if resp.status != 200:
            error = (await resp.json())["error"]
            return Outcome(resp.status, response_s, None, resp.headers.get("retry-after"),
                           error["type"])
        ttft_s = None
        async for line in resp.content:
            if line.startswith(b'data: {"error"'):  # the stream ends with an error event
                error = json.loads(line[6:])["error"]
                return Outcome(error["code"], response_s, None, None, error["type"])
            if ttft_s is None and line.startswith(b"data: {"):
                ttft_s = (time.perf_counter() - started) * SPEEDUP
        return Outcome(200, response_s, ttft_s, None, None)


async def _drive(cluster: Cluster, rate: float, num: int, seed: int,
                 rss_samples: list[int], pid: int) -> list[Outcome]:
    url = f"{cluster.endpoint}/v1/completions"
    prompts = [s.prompt for s in RandomWorkload(4096, 8).build(num, seed)]
    offsets = arrival_offsets_s(num, rate, 1.0, seed) / SPEEDUP
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        started = time.perf_counter()
        tasks = []
        for prompt, offset in zip(prompts, offsets):
            delay = started + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, url, prompt)))
            if len(tasks) % 50 == 0:
                rss_samples.append(_rss_bytes(pid))
        return list(await asyncio.gather(*tasks))


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_overload_is_shed_at_once_and_the_admitted_meet_the_slo(tmp_path: Path) -> None:
    """3x the sustainable rate: the excess gets 429 (Retry-After, RateLimitError) within 100 ms
    of arrival, >= 95% of the admitted requests meet the TTFT bound, the scheduler's RSS grows by
    less than a fixed bound, and a normal load afterwards is served in full within the bound."""
    cluster = start_cluster(tmp_path, speedup=SPEEDUP, **{"scheduler.ttft_slo_s": SLO_S})
    try:
        pid = next(c.process.pid for c in cluster.children if c.name == "scheduler")
        baseline = _rss_bytes(pid)
        rss: list[int] = []
        num = int(3 * SUSTAINABLE_RATE * OVERLOAD_S)
        overload = asyncio.run(_drive(cluster, 3 * SUSTAINABLE_RATE, num, 1, rss, pid))
        rss.append(_rss_bytes(pid))
        after = asyncio.run(_drive(cluster, SUSTAINABLE_RATE / 4, 20, 2, rss, pid))
    finally:
        cluster.stop()
    shed = [o for o in overload if o.status == 429]
    admitted = [o for o in overload if o.status == 200]
    assert len(shed) + len(admitted) == len(overload), {o.status for o in overload}
    assert 0.3 * len(overload) < len(shed) < 0.9 * len(overload)
    assert all(o.retry_after and int(o.retry_after) >= 1 for o in shed)
    assert {o.error_type for o in shed} == {"RateLimitError"}
    assert np.percentile([o.response_s for o in shed], 99) < 0.1
    assert sum(o.ttft_s <= SLO_S for o in admitted) >= 0.95 * len(admitted)
    assert max(rss) - baseline < RSS_GROWTH_BYTES
    assert [o.status for o in after] == [200] * len(after)
    assert all(o.ttft_s <= SLO_S for o in after)


def test_a_request_deadline_ends_waiting_requests_with_408(tmp_path: Path) -> None:
    """scheduler.request_timeout_s without shedding: a burst queues, the streams whose first
    token would come after their deadline end with a 408 error event in OpenAI's shape
    (TimeoutError), the rest are served in time, and no worker keeps counting any of them."""
    timeout_s = 0.5
    cluster = start_cluster(tmp_path, speedup=SPEEDUP, **{"scheduler.ttft_slo_s": 0,
                                                          "scheduler.request_timeout_s": timeout_s})
    try:
        pid = next(c.process.pid for c in cluster.children if c.name == "scheduler")
        outcomes = asyncio.run(_drive(cluster, 3 * SUSTAINABLE_RATE, 60, 3, [], pid))
        deadline = time.monotonic() + 30
        while any(w["num_inflight"] for w in _workers(cluster)):
            assert time.monotonic() < deadline, _workers(cluster)
            time.sleep(0.1)
    finally:
        cluster.stop()
    timed_out = [o for o in outcomes if o.status == 408]
    served = [o for o in outcomes if o.status == 200]
    assert timed_out and served and len(timed_out) + len(served) == len(outcomes)
    assert {o.error_type for o in timed_out} == {"TimeoutError"}
    assert all(o.ttft_s <= timeout_s + 0.05 for o in served)


def _workers(cluster: Cluster) -> list[dict]:
    return httpx.get(f"{cluster.endpoint}/workers", timeout=5).json()
