"""Drives N concurrent streams through loadgen's aiohttp client, across client processes, and
measures what arrived.

One *level* = `concurrency` streams of `num_tokens` tokens, split over `num_procs` processes
(each with its own event loop and session), started `stagger_s` apart in total so chunk phases
spread as real traffic would. All processes share one start instant on CLOCK_MONOTONIC
(`time.perf_counter` on Linux), so their timestamps share an axis.

Measured, per level:
- sustained chunks/s: text chunks that arrived while every stream was active (from the last
  stream's first chunk to the first stream's last chunk) divided by that window's length;
  the whole span is used when that window is under `MIN_WINDOW_S`;
- tokens/s: sustained chunks/s x (usage tokens / chunks) over the level;
- TPOT ratio: mean over streams of client TPOT / target TPOT (the stream's own modelled TPOT
  from its final usage chunk's `supernode.modelled_tpot_s`, model seconds / speedup, when the
  server sends it, else the fixed target); a level passes
  when no stream failed and the ratio is within the tolerance on either side (a server that
  falls behind and then catches up on deadline-paced chunks shows TPOT *below* target);
- offered chunks/s: what the streams would deliver if every one ran at its target TPOT,
  sum over streams of 1 / (target TPOT x tokens per chunk);
- client CPU: CPU seconds / wall seconds of each client process (near 1.0 = client-bound).
A level passes when no stream failed, every stream was active at once (the window exists),
the TPOT ratio is within the tolerance and sustained chunks/s is at least (1 - tolerance) of
the offered rate: a server that serialises streams can keep per-stream TPOT but not the rate.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from loadgen.client import make_session, send_request
from loadgen.config import EndpointConfig
from loadgen.types import RequestResult, SampleRequest
from loadgen.workloads.tokens import random_token_ids

MIN_WINDOW_S = 0.5
START_DELAY_S = 1.0


@dataclass(frozen=True)
class LevelSpec:
    """One level's shape. Each stream's target TPOT is its own modelled TPOT (the server's
    `supernode.modelled_tpot_s`, model seconds) / `speedup` (model seconds per wall second);
    `target_tpot_ms` (wall) is used for streams that report none."""

    concurrency: int
    num_tokens: int
    num_procs: int
    stagger_s: float
    prompt_len: int
    target_tpot_ms: float | None
    speedup: float = 1.0


@dataclass(frozen=True)
class LevelMeasurement:
    concurrency: int
    num_failed: int
    errors: dict[str, int]
    chunks_per_s: float
    tokens_per_s: float
    window_s: float
    mean_tpot_ms: float
    target_tpot_ms: float
    tpot_ratio: float
    offered_chunks_per_s: float
    all_concurrent: bool
    mean_itl_ms: float
    p99_itl_ms: float
    p99_ttft_ms: float
    client_cpu: float

    def passes(self, tolerance: float) -> bool:
        return (
            self.num_failed == 0
            and self.all_concurrent
            and abs(self.tpot_ratio - 1) <= tolerance
            and self.chunks_per_s >= (1 - tolerance) * self.offered_chunks_per_s
        )


def run_level(endpoint: EndpointConfig, spec: LevelSpec) -> LevelMeasurement:
    """Run one level in `spec.num_procs` fresh processes and reduce what they saw."""
    start_at = time.perf_counter() + START_DELAY_S + 0.2 * spec.num_procs
    shares = [len(range(i, spec.concurrency, spec.num_procs)) for i in range(spec.num_procs)]
    jobs = [(endpoint, spec, i, n, start_at) for i, n in enumerate(shares) if n]
    with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
        outputs = pool.starmap(_worker, jobs)
    results = [r for rs, _ in outputs for r in rs]
    return _reduce(spec, results, [cpu for _, cpu in outputs])


def _worker(endpoint, spec: LevelSpec, proc_index: int, num_streams: int, start_at: float):
    """In a client process: run this process's streams; returns (results, cpu fraction)."""
    _raise_fd_limit()
    return asyncio.run(_drive(endpoint, spec, proc_index, num_streams, start_at))


async def _drive(endpoint, spec: LevelSpec, proc_index: int, num_streams: int, start_at: float):
    rng = np.random.default_rng(proc_index)
    samples = [
        SampleRequest(random_token_ids(rng, spec.prompt_len), spec.prompt_len, spec.num_tokens)
        for _ in range(num_streams)
    ]
    async with make_session(endpoint) as session:

        async def stream(j: int, sample: SampleRequest) -> RequestResult:
            k = proc_index + j * spec.num_procs  # global stream index
            await asyncio.sleep(
                max(0.0, start_at + spec.stagger_s * k / spec.concurrency - time.perf_counter())
            )
            return await send_request(session, endpoint, sample, start_at)

        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        wall0, cpu0 = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(stream(j, s) for j, s in enumerate(samples)))
        cpu = (time.process_time() - cpu0) / max(1e-9, time.perf_counter() - wall0)
    return list(results), cpu


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _chunk_times(r: RequestResult) -> np.ndarray:
    return r.started_at_s + r.ttft_s + np.concatenate(([0.0], np.cumsum(r.itls_s)))


def _reduce(spec: LevelSpec, results: list[RequestResult], cpus: list[float]) -> LevelMeasurement:
    ok = [r for r in results if r.success and r.tpot_s is not None]
    bad = [r for r in results if not (r.success and r.tpot_s is not None)]
    errors = dict(Counter(r.error or "fewer than 2 tokens" for r in bad).most_common(3))
    if not ok:
        nan = float("nan")
        return LevelMeasurement(
            concurrency=spec.concurrency,
            num_failed=len(results),
            errors=errors,
            chunks_per_s=0.0,
            tokens_per_s=0.0,
            window_s=0.0,
            mean_tpot_ms=nan,
            target_tpot_ms=nan,
            tpot_ratio=nan,
            offered_chunks_per_s=nan,
            all_concurrent=False,
            mean_itl_ms=nan,
            p99_itl_ms=nan,
            p99_ttft_ms=nan,
            client_cpu=max(cpus),
        )
    times = [_chunk_times(r) for r in ok]
    lo, hi = max(t[0] for t in times), min(t[-1] for t in times)
    all_concurrent = bool(hi - lo >= MIN_WINDOW_S)
    if not all_concurrent:
        lo, hi = min(t[0] for t in times), max(t[-1] for t in times)
    in_window = sum(int(np.count_nonzero((t >= lo) & (t <= hi))) for t in times)
    chunks_per_s = in_window / (hi - lo)
    tokens_per_chunk = sum(r.output_tokens for r in ok) / sum(len(t) for t in times)
    targets_ms = np.array([_target_ms(r, spec) for r in ok])
    tpots_ms = np.array([r.tpot_s * 1e3 for r in ok])
    itls_ms = np.concatenate([np.asarray(r.itls_s) for r in ok]) * 1e3
    return LevelMeasurement(
        concurrency=spec.concurrency,
        num_failed=len(results) - len(ok),
        errors=errors,
        chunks_per_s=chunks_per_s,
        tokens_per_s=chunks_per_s * tokens_per_chunk,
        window_s=float(hi - lo),
        mean_tpot_ms=float(tpots_ms.mean()),
        target_tpot_ms=float(targets_ms.mean()),
        tpot_ratio=float((tpots_ms / targets_ms).mean()),
        offered_chunks_per_s=float((1e3 / (targets_ms * tokens_per_chunk)).sum()),
        all_concurrent=all_concurrent,
        mean_itl_ms=float(itls_ms.mean()),
        p99_itl_ms=float(np.percentile(itls_ms, 99)),
        p99_ttft_ms=float(np.percentile([r.ttft_s * 1e3 for r in ok], 99)),
        client_cpu=max(cpus),
    )


def _target_ms(r: RequestResult, spec: LevelSpec) -> float:
    modelled_s = r.server_details.get("modelled_tpot_s")
    if modelled_s:
        return modelled_s / spec.speedup * 1e3
    if spec.target_tpot_ms is None:
        raise ValueError("the server sent no supernode.modelled_tpot_s and no target was given")
    return spec.target_tpot_ms
