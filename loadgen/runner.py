"""Runs one benchmark point: warm-up, then releases samples on schedule and collects results.

Stages: warm-up (`num_warmups` copies of the first sample, results discarded) -> timed run
(each sample released at its offset, then waits for a `max_concurrency` slot, then is sent) ->
`RunOutcome`. The run's duration spans from the first release to the last completion, as in
vLLM, so request throughput = completed / duration.

This is where wall time meets model time (`EndpointConfig.speedup`): the schedule's offsets
are model seconds and are slept as offset / speedup wall seconds; each result's times and the
duration are measured on the wall clock and handed on x speedup, so everything downstream
(metrics, SLOs, reports, plots) is in model seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import aiohttp

from loadgen.accumulate import RunAccumulator
from loadgen.arrivals import schedule_offsets_s
from loadgen.client import make_session, send_request
from loadgen.config import EndpointConfig, LoadConfig, SloConfig, request_seed
from loadgen.types import RequestResult, SampleRequest

OnResult = Callable[[RequestResult], None]


@dataclass(frozen=True)
class RunOutcome:
    """One point in model seconds: everything the reports need (`acc`), the run's duration,
    and the per-request results in sample order, failures included, when they were kept
    (always over HTTP; the simulator keeps them only when asked, see `supernode sim
    --save-detailed`)."""

    acc: RunAccumulator
    duration_s: float
    load: LoadConfig
    results: tuple[RequestResult, ...] | None = None


async def run_benchmark(
    samples: list[SampleRequest],
    endpoint: EndpointConfig,
    load: LoadConfig,
    tokens_as_ids: bool = True,
    on_result: OnResult | None = None,
    slo: SloConfig | None = None,
) -> RunOutcome:
    """Warm up, then run `samples` under `load`; `on_result` is called as each completes,
    with the result already in model seconds. `slo` decides which results count as good."""
    if not samples:
        raise ValueError("no samples to run")
    async with make_session(endpoint, load.max_concurrency) as session:
        slots = _slots(load.max_concurrency)
        if load.num_warmups:
            warmups = [samples[0]] * load.num_warmups
            await _run_all(
                session, endpoint, warmups, [0.0] * len(warmups), slots, tokens_as_ids, None,
                None,
            )
        model_offsets_s = schedule_offsets_s(
            samples, load.request_rate, load.burstiness, load.seed, load.time_scale
        )
        started_at = time.perf_counter()
        results = await _run_all(
            session,
            endpoint,
            samples,
            model_offsets_s / endpoint.speedup,
            slots,
            tokens_as_ids,
            on_result,
            load.seed if endpoint.send_seeds else None,
        )
        duration_s = (time.perf_counter() - started_at) * endpoint.speedup
    acc = RunAccumulator(slo or SloConfig())
    for result in results:
        acc.add(result)
    return RunOutcome(acc, duration_s, load, tuple(results))


def in_model_time(result: RequestResult, speedup: float) -> RequestResult:
    """`result`, measured on the wall clock of a server at `speedup`, in model seconds."""
    if speedup == 1.0:
        return result
    return replace(
        result,
        ttft_s=None if result.ttft_s is None else result.ttft_s * speedup,
        latency_s=result.latency_s * speedup,
        started_at_s=result.started_at_s * speedup,
        itls_s=tuple(gap * speedup for gap in result.itls_s),
    )


def _slots(max_concurrency: int | None):
    if max_concurrency is None:
        return contextlib.nullcontext()
    return asyncio.Semaphore(max_concurrency)


async def _run_all(
    session: aiohttp.ClientSession,
    endpoint: EndpointConfig,
    samples: list[SampleRequest],
    wall_offsets_s,
    slots,
    tokens_as_ids: bool,
    on_result: OnResult | None,
    run_seed: int | None,
) -> list[RequestResult]:
    """`run_seed` not None: request i is sent with the seed `request_seed(run_seed, i)`."""
    started_at = time.perf_counter()

    async def one(index: int, sample: SampleRequest) -> RequestResult:
        seed = None if run_seed is None else request_seed(run_seed, index)
        async with slots:
            result = await send_request(session, endpoint, sample, started_at, tokens_as_ids,
                                        seed)
        result = in_model_time(result, endpoint.speedup)
        if on_result is not None:
            on_result(result)
        return result

    tasks = []
    for index, (sample, offset_s) in enumerate(zip(samples, wall_offsets_s)):
        delay_s = started_at + float(offset_s) - time.perf_counter()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        tasks.append(asyncio.create_task(one(index, sample)))
    return list(await asyncio.gather(*tasks))
