"""The simulator and the live cluster agree, under pressure too: one request lifecycle, two clocks.

Each scenario sends the same samples with the same per-request seeds (`--send-seeds`: the same
MTP acceptance and EOS draws on both sides) to a live cluster, then simulates them with the
same config at the times the live client sent them, and compares what the client sees: TTFT,
TPOT, E2E latency and request throughput, their means within 5% and their p99s within 10%.

Scenarios: light load and a load near the prefill pool's saturation (queueing) at speedup 1
and 0.5; prefix-cache hits (prompts sharing prefixes); decode admission pressure (a decode
instance whose KV holds a handful of reservations, so requests wait in line for room). The
live side's own overhead is absorbed by anchoring each stage to the request's timeline and
sending results a little early (`delivery_lead_s`), so these bounds hold on a loaded machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from loadgen.config import EndpointConfig, LoadConfig
from loadgen.runner import RunOutcome, run_benchmark
from loadgen.types import SampleRequest
from loadgen.workloads import PrefixRepetitionWorkload, RandomWorkload
from services.launcher import Cluster
from supernode.sim.runner import simulate_samples
from tests.e2e.conftest import start_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

MEAN_TOLERANCE = 0.05
P99_TOLERANCE = 0.10
SATURATION_RATE = 17.0
"""Requests per model second of 4,096-token prompts: about 0.75 of one default prefill
instance's modelled capacity (22.5 req/s), so requests queue for batches."""
ADMISSION_PRESSURE = {
    "decode.num_devices": 16, "decode.dp": 32, "decode.ep": 32,
    "decode.hbm_utilization": 0.6405,  # ~300k KV tokens: ~9 reservations of 34k tokens
    "eos_probability": 1 / 64,  # outputs end early, reservations are for max_tokens
    "scheduler.ttft_slo_s": 0,  # wait in line rather than shed: compare the queue
}


def _run_live(cluster: Cluster, samples: list[SampleRequest], load: LoadConfig,
              ignore_eos: bool) -> RunOutcome:
    """The samples against the live cluster, after a warm-up of other prompts: a simulation
    has no cold start (first connections, first code paths), and warming up with the
    samples themselves would leave them in the prefix cache."""
    endpoint = EndpointConfig(cluster.endpoint, model=cluster.config.model_name,
                              ignore_eos=ignore_eos, request_timeout_s=300,
                              speedup=cluster.config.speedup, send_seeds=True)
    warm_up = RandomWorkload(512, 8).build(4, seed=10_000 + load.seed)
    asyncio.run(run_benchmark(warm_up, endpoint, LoadConfig(max_concurrency=1)))
    return asyncio.run(run_benchmark(samples, endpoint, load))


def _figures(outcome: RunOutcome) -> dict[str, tuple[float, float]]:
    """(mean, p99) of each compared figure; throughput has no p99."""
    ok = [r for r in outcome.results if r.success]
    assert len(ok) == len(outcome.results), {r.error for r in outcome.results if not r.success}
    series = {"ttft": [r.ttft_s for r in ok], "tpot": [r.tpot_s for r in ok if r.tpot_s],
              "e2e": [r.latency_s for r in ok]}
    figures = {name: (float(np.mean(v)), float(np.percentile(v, 99)))
               for name, v in series.items()}
    figures["throughput"] = (len(ok) / outcome.duration_s, float("nan"))
    return figures


def _as_sent(samples: list[SampleRequest], live: RunOutcome) -> list[SampleRequest]:
    """The samples at the times the live client really sent them (a trace): near saturation
    a queue amplifies the client's sub-millisecond send jitter, which is not the model's."""
    sent_at = np.maximum.accumulate([r.started_at_s for r in live.results])
    return [dataclasses.replace(s, arrival_offset_s=float(t)) for s, t in zip(samples, sent_at)]


def _assert_agree(cluster: Cluster, samples: list[SampleRequest], load: LoadConfig,
                  ignore_eos: bool = True) -> tuple[RunOutcome, RunOutcome]:
    live = _run_live(cluster, samples, load, ignore_eos)
    sim = simulate_samples(cluster.config, _as_sent(samples, live), load,
                           ignore_eos=ignore_eos, detailed=True)
    got, want = _figures(live), _figures(sim)
    for name, (mean, p99) in want.items():
        live_mean, live_p99 = got[name]
        assert live_mean == pytest.approx(mean, rel=MEAN_TOLERANCE), (name, "mean", got, want)
        if not np.isnan(p99):
            assert live_p99 == pytest.approx(p99, rel=P99_TOLERANCE), (name, "p99", got, want)
    return live, sim


@pytest.fixture(scope="module", params=[1.0, 0.5], ids=["speedup1", "speedup0.5"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("vs-live"), speedup=request.param)
    yield c
    c.stop()


def test_light_load(cluster: Cluster) -> None:
    """Little queueing: what is compared is mostly the modelled prefill, hand-off and decode."""
    samples = RandomWorkload(4096, 64).build(40, 1)
    _assert_agree(cluster, samples, LoadConfig(request_rate=4.0, seed=1))


def test_near_saturation(cluster: Cluster) -> None:
    """Prefill batches fill and requests queue for them; TTFT's tail is the queue's."""
    samples = RandomWorkload(4096, 64).build(150, 2)
    _assert_agree(cluster, samples, LoadConfig(request_rate=SATURATION_RATE, seed=2))


def test_prefix_cache_hits(tmp_path: Path) -> None:
    """Prompts sharing four 3,840-token prefixes: the same blocks hit in EMS on both sides."""
    samples = PrefixRepetitionWorkload(3840, 256, 4, 64).build(100, 3)
    cluster = start_cluster(tmp_path)
    try:
        live, sim = _assert_agree(cluster, samples, LoadConfig(request_rate=12.0, seed=3))
    finally:
        cluster.stop()
    live_cached = sum(r.cached_tokens for r in live.results)
    sim_cached = sum(r.cached_tokens for r in sim.results)
    assert sim_cached > 0.5 * sum(r.prompt_len for r in sim.results)
    assert live_cached == pytest.approx(sim_cached, rel=0.05)


def test_decode_admission_pressure(tmp_path: Path) -> None:
    """Decode KV holds a few reservations: requests wait in the lifecycle's line for room and
    are admitted in order as room frees, on both sides."""
    samples = RandomWorkload(4096, 30_000).build(100, 4)
    cluster = start_cluster(tmp_path, speedup=1.0, **ADMISSION_PRESSURE)
    try:
        _, sim = _assert_agree(cluster, samples, LoadConfig(request_rate=SATURATION_RATE,
                                                           seed=4), ignore_eos=False)
    finally:
        cluster.stop()
    waited = [r.ttft_s for r in sim.results]
    assert max(waited) > 5 * min(waited), "no request waited for decode room"
