"""The simulator and the live cluster agree, for the same config, workload and arrivals.

At a low rate there is little queueing, so what differs is the live system's real overhead
(HTTP, gRPC, KV-transfer RPCs: 20-50 wall ms per request on a busy 2-core machine). The cluster
runs at speedup 0.1 so that overhead is small beside the stretched model times (TTFT 40-130
model ms -> 0.4-1.3 wall s; 20-50 wall ms of overhead is 2-5 model ms). The client is told the
speedup, so both sides take the rate and report in model seconds. Live requests draw
their own MTP acceptance, so TPOT agrees only on average: 48 tokens x 12 requests keep that
mean within about 2%. Mean TTFT and mean TPOT must agree within 10%.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from loadgen.config import EndpointConfig, LoadConfig
from loadgen.runner import run_benchmark
from loadgen.workloads import RandomWorkload
from supernode.sim.runner import simulate_samples
from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e

SPEEDUP = 0.1


def _means(outcome) -> tuple[float, float]:
    ok = [r for r in outcome.results if r.success]
    assert len(ok) == len(outcome.results)
    return float(np.mean([r.ttft_s for r in ok])), float(np.mean([r.tpot_s for r in ok]))


def test_sim_matches_live_at_low_rate(tmp_path: Path) -> None:
    """Same config, samples and arrivals: simulated mean TTFT and TPOT are within 10% of what
    the client measures against the live cluster."""
    samples = RandomWorkload(2048, 48, 0.5, 0).build(12, 5)
    load = LoadConfig(request_rate=1.5 / SPEEDUP, seed=5)  # 15 per model s = 1.5 per wall s
    cluster = start_cluster(tmp_path, speedup=SPEEDUP)
    try:
        endpoint = EndpointConfig(cluster.endpoint, model="deepseek-r1", ignore_eos=True,
                                  request_timeout_s=60, speedup=SPEEDUP)
        live = asyncio.run(run_benchmark(samples, endpoint, load))
        sim = simulate_samples(cluster.config, samples, load, ignore_eos=True, detailed=True)
    finally:
        cluster.stop()
    (live_ttft, live_tpot), (sim_ttft, sim_tpot) = _means(live), _means(sim)
    assert sim_ttft == pytest.approx(live_ttft, rel=0.10)
    assert sim_tpot == pytest.approx(live_tpot, rel=0.10)
