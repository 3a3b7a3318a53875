"""Runs one benchmark point: warm-up, then releases samples on schedule and collects results.

Stages: warm-up (`num_warmups` copies of the first sample, results discarded) -> timed run
(each sample released at its offset, then waits for a `max_concurrency` slot, then is sent) ->
`RunOutcome`. The run's duration spans from the first release to the last completion, as in
vLLM, so request throughput = completed / duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from loadgen.arrivals import schedule_offsets_s
from loadgen.client import make_session, send_request
from loadgen.config import EndpointConfig, LoadConfig
from loadgen.types import RequestResult, SampleRequest

OnResult = Callable[[RequestResult], None]


@dataclass(frozen=True)
class RunOutcome:
    """Results in sample order (one per sample, failures included) and the run's duration."""

    results: tuple[RequestResult, ...]
    duration_s: float
    load: LoadConfig


async def run_benchmark(
    samples: list[SampleRequest],
    endpoint: EndpointConfig,
    load: LoadConfig,
    tokens_as_ids: bool = True,
    on_result: OnResult | None = None,
) -> RunOutcome:
    """Warm up, then run `samples` under `load`; `on_result` is called as each completes."""
    if not samples:
        raise ValueError("no samples to run")
    async with make_session(endpoint, load.max_concurrency) as session:
        slots = _slots(load.max_concurrency)
        if load.num_warmups:
            warmups = [samples[0]] * load.num_warmups
            await _run_all(
                session, endpoint, warmups, [0.0] * len(warmups), slots, tokens_as_ids, None
            )
        offsets = schedule_offsets_s(
            samples, load.request_rate, load.burstiness, load.seed, load.time_scale
        )
        started_at = time.perf_counter()
        results = await _run_all(
            session, endpoint, samples, offsets, slots, tokens_as_ids, on_result
        )
        duration_s = time.perf_counter() - started_at
    return RunOutcome(tuple(results), duration_s, load)


def _slots(max_concurrency: int | None):
    if max_concurrency is None:
        return contextlib.nullcontext()
    return asyncio.Semaphore(max_concurrency)


async def _run_all(
    session: aiohttp.ClientSession,
    endpoint: EndpointConfig,
    samples: list[SampleRequest],
    offsets_s,
    slots,
    tokens_as_ids: bool,
    on_result: OnResult | None,
) -> list[RequestResult]:
    started_at = time.perf_counter()

    async def one(sample: SampleRequest) -> RequestResult:
        async with slots:
            result = await send_request(session, endpoint, sample, started_at, tokens_as_ids)
        if on_result is not None:
            on_result(result)
        return result

    tasks = []
    for sample, offset_s in zip(samples, offsets_s):
        delay_s = started_at + float(offset_s) - time.perf_counter()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        tasks.append(asyncio.create_task(one(sample)))
    return list(await asyncio.gather(*tasks))
