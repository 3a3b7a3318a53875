"""A frozen EMS (SIGSTOP) behind prefill's circuit breaker: a few requests pay the lookup
timeout, the rest skip the cache without calling EMS, and the cache is back after SIGCONT."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from services.launcher import Cluster
from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e

MODEL = "deepseek-r1"


def prefill_metrics(cluster: Cluster) -> str:
    workers = httpx.get(f"{cluster.endpoint}/workers", timeout=5).json()
    (address,) = [w["metrics_address"] for w in workers if w["kind"] == "prefill"]
    return httpx.get(f"http://{address}/metrics", timeout=5).text


def value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def complete(client: httpx.Client, cluster: Cluster, prompt: list[int]) -> tuple[dict, float]:
    started = time.monotonic()
    r = client.post(f"{cluster.endpoint}/v1/completions", json={
        "model": MODEL, "prompt": prompt, "max_tokens": 2, "ignore_eos": True})
    r.raise_for_status()
    return r.json(), time.monotonic() - started


def test_a_frozen_ems_opens_the_breaker_and_it_closes_after_sigcont(tmp_path) -> None:
    """EMS stopped: the first `breaker_failure_threshold` (3) requests each time out on the
    lookup and open the breaker; the next ones are served without calling EMS (the lookup
    error count stays at 3, the skip count grows) and faster than those that waited. After
    SIGCONT the breaker probes, closes, and a warm prompt hits the cache again."""
    cluster = start_cluster(tmp_path)
    ems = next(c for c in cluster.children if c.name == "ems").process
    warm = [7] * 1024
    try:
        with httpx.Client(timeout=60) as client:
            complete(client, cluster, warm)
            deadline = time.monotonic() + 20
            while complete(client, cluster, warm)[0]["usage"]["prompt_tokens_details"][
                    "cached_tokens"] == 0 and time.monotonic() < deadline:
                time.sleep(0.1)

            ems.send_signal(signal.SIGSTOP)
            timed_out = [complete(client, cluster, [100 + i] * 300)[1] for i in range(3)]
            text = prefill_metrics(cluster)
            assert value(text, "supernode_cache_breaker_state", state="open") == 1
            assert value(text, "supernode_cache_errors_total", op="lookup") == 3
            skipped = [complete(client, cluster, [200 + i] * 300)[1] for i in range(5)]
            text = prefill_metrics(cluster)
            assert value(text, "supernode_cache_errors_total", op="lookup") == 3
            assert value(text, "supernode_cache_skipped_total") >= 5
            assert max(skipped) < min(timed_out)

            ems.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 30
            while value(prefill_metrics(cluster), "supernode_cache_breaker_state",
                        state="closed") != 1 and time.monotonic() < deadline:
                complete(client, cluster, [300] * 300)  # traffic lets the breaker probe
                time.sleep(0.2)
            text = prefill_metrics(cluster)
            assert value(text, "supernode_cache_breaker_state", state="closed") == 1
            assert value(text, "supernode_cache_breaker_transitions_total", to="closed") >= 1
            body, _ = complete(client, cluster, warm)
            assert body["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
    finally:
        ems.send_signal(signal.SIGCONT)
        cluster.stop()

