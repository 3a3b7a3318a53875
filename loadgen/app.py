"""The composition root of one `supernode bench` invocation.

Plan -> one run per rate, each with its own samples (fresh prompts per point and per run, so no
point is served from a prefix cache the previous one warmed; `reuse_prompts` sends the same
prompts everywhere, for cache experiments) -> progress, then the summary table -> result files:
per point a vLLM-schema JSON and a per-request CSV; for a sweep also a combined `*-sweep.json`;
plots and their HTML page when asked (always for a saved sweep).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import aiohttp
from rich.console import Console

from loadgen.client import request_headers
from loadgen.config import EndpointConfig, LoadConfig, ReportConfig, SloConfig
from loadgen.metrics import compute_metrics
from loadgen.plots import write_plots
from loadgen.progress import progress_reporter
from loadgen.report import RunInfo, default_result_filename, result_dict, write_requests_csv
from loadgen.runner import OnResult, RunOutcome, run_benchmark
from loadgen.summary import print_summary
from loadgen.sweep import SweepPoint, max_rate_meeting_slo, run_sweep, sweep_summary
from loadgen.types import SampleRequest
from loadgen.workloads import iter_samples


@dataclass(frozen=True)
class OutputConfig:
    """Where results go. Files are written only with `save_result` or `plots`; `result_dir`
    defaults to the working directory."""

    save_result: bool = False
    save_detailed: bool = False
    result_dir: str | None = None
    result_filename: str | None = None
    label: str | None = None
    plots: bool = False
    progress: bool = True
    reuse_prompts: bool = False
    """Send every point the same prompts (from `--seed`), e.g. to measure a warm cache."""


@dataclass(frozen=True)
class BenchPlan:
    """Everything one invocation does; `rates` has one entry per sweep point."""

    endpoint: EndpointConfig
    load: LoadConfig
    rates: tuple[float, ...]
    workload: object
    dataset_name: str
    num_prompts: int
    report: ReportConfig
    slo: SloConfig
    output: OutputConfig
    tokens_as_ids: bool = True
    bisect_steps: int = 0


@dataclass(frozen=True)
class PointSamples:
    """One point's samples, made on demand: `build()` lists them, `stream()` yields them one
    at a time (the simulator streams millions); both give the same samples."""

    workload: object
    num_prompts: int
    seed: int

    def build(self) -> list[SampleRequest]:
        return self.workload.build(self.num_prompts, self.seed)

    def stream(self) -> Iterator[SampleRequest]:
        return iter_samples(self.workload, self.num_prompts, self.seed)


Execute = Callable[[PointSamples, LoadConfig, OnResult], Awaitable[RunOutcome]]
"""Runs one point's samples under a load and returns what the client saw: over HTTP by
default (`http_executor`); the offline simulator passes its own."""


def http_executor(plan: BenchPlan) -> Execute:
    async def execute(samples: PointSamples, load: LoadConfig, on_result: OnResult):
        return await run_benchmark(samples.build(), plan.endpoint, load, plan.tokens_as_ids,
                                   on_result, plan.slo)

    return execute


def prompt_seeds(plan: BenchPlan, salt: int | None) -> Callable[[int], int]:
    """The prompt seed of the point with a given index: `--seed` itself when prompts are
    reused, else one mixed with the point index and `salt` (a fresh random number per
    invocation for live runs, so a repeated run does not find its prompts cached)."""
    if plan.output.reuse_prompts:
        return lambda index: plan.load.seed
    mix = 0 if salt is None else salt
    return lambda index: (plan.load.seed * 1_000_003 + index * 7_919 + mix) % 2**63


async def resolve_model(endpoint: EndpointConfig) -> str:
    """The first model id the server lists at /v1/models."""
    base = endpoint.base_url.rstrip("/")
    url = base + ("/models" if base.endswith("/v1") else "/v1/models")
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=request_headers(endpoint)) as resp,
    ):
        if resp.status != 200:
            raise ValueError(f"--model not given and GET {url} answered HTTP {resp.status}")
        models = (await resp.json()).get("data") or []
    if not models:
        raise ValueError(f"--model not given and {url} lists no models")
    return str(models[0]["id"])


async def run_plan(
    plan: BenchPlan, console: Console | None = None, execute: Execute | None = None,
    simulated: bool = False,
) -> int:
    """Run every point; returns 0, or 1 when not a single request of any point completed.

    `simulated`: `execute` is the offline simulator (results are marked as simulated, and
    prompts need no salt: every simulated point starts with a cold cache)."""
    console = console or Console()
    execute = execute or http_executor(plan)
    seed_of = prompt_seeds(plan, None if simulated else secrets.randbits(62))
    date = datetime.now().strftime("%Y%m%d-%H%M%S")
    info = RunInfo(plan.endpoint, plan.num_prompts, plan.output.label, plan.dataset_name, date,
                   simulated)
    target = plan.slo.attainment_target if plan.slo.enabled else None
    num_points = [0]

    async def run_point(rate: float) -> SweepPoint:
        samples = PointSamples(plan.workload, plan.num_prompts, seed_of(num_points[0]))
        num_points[0] += 1
        return await _run_point(plan, samples, info, rate, console, execute)

    points = await run_sweep(plan.rates, run_point, target, plan.bisect_steps)
    if len(points) > 1:
        _print_sweep(console, points, target)
    _write_outputs(plan, info, points, target, console)
    return 0 if any(p.metrics.completed for p in points) else 1


async def _run_point(
    plan: BenchPlan,
    samples: PointSamples,
    info: RunInfo,
    rate: float,
    console: Console,
    execute: Execute,
) -> SweepPoint:
    load = replace(plan.load, request_rate=rate)
    trace = getattr(plan.workload, "is_trace", False)
    pacing = (
        f"trace timestamps / {load.time_scale:g}"
        if trace
        else f"request rate {rate:g} req/s, burstiness {load.burstiness:g}"
    )
    if plan.endpoint.speedup != 1.0:
        pacing += f" (model time; server speedup {plan.endpoint.speedup:g})"
    console.print(
        f"[bold]{pacing}[/bold], "
        f"max concurrency {load.max_concurrency}, {samples.num_prompts} requests -> "
        f"{plan.endpoint.api_url}"
    )
    with progress_reporter(plan.output.progress, console, samples.num_prompts) as advance:
        outcome = await execute(samples, load, advance)
    metrics = compute_metrics(outcome.acc, outcome.duration_s, plan.report)
    print_summary(console, outcome, metrics, plan.report)
    result = result_dict(info, outcome, metrics, plan.report, plan.slo, plan.output.save_detailed)
    return SweepPoint(rate, outcome, metrics, result)


def _print_sweep(console: Console, points: list[SweepPoint], target: float | None) -> None:
    for p in points:
        attained = (
            ""
            if p.metrics.slo_attainment is None
            else f", SLO attainment {p.metrics.slo_attainment:.3f}"
        )
        console.print(
            f"{p.request_rate:g} req/s: {p.metrics.request_throughput:.2f} req/s done, "
            f"{p.metrics.failed} failed{attained}"
        )
    if target is not None:
        best = max_rate_meeting_slo(points, target)
        verdict = "no rate" if best is None else f"{best:g} req/s"
        console.print(f"[bold]highest rate meeting SLO attainment >= {target:g}: {verdict}[/bold]")


def _write_outputs(
    plan: BenchPlan, info: RunInfo, points: list[SweepPoint], target, console: Console
) -> None:
    out = plan.output
    if not (out.save_result or out.plots):
        return
    result_dir = Path(out.result_dir or ".")
    result_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if out.save_result:
        for point in points:
            path = result_dir / _point_filename(out, info, point, len(points) > 1)
            path.write_text(json.dumps(point.result, indent=2), encoding="utf-8")
            written.append(path)
            if point.outcome.results is not None:
                write_requests_csv(path.with_suffix(".csv"), point.outcome, plan.slo)
                written.append(path.with_suffix(".csv"))
        if len(points) > 1:
            path = result_dir / _sweep_filename(out, info)
            path.write_text(
                json.dumps(sweep_summary(points, plan.slo.limits_ms, target), indent=2),
                encoding="utf-8",
            )
            written.append(path)
    if out.plots or (out.save_result and len(points) > 1):
        title = f"supernode bench: {info.endpoint.model} @ {info.endpoint.api_url}"
        written += write_plots(result_dir / "plots", points, target, title)
    for path in written:
        console.print(f"wrote {path}")


def _point_filename(out: OutputConfig, info: RunInfo, point: SweepPoint, in_sweep: bool) -> str:
    if not out.result_filename:
        return default_result_filename(info, point.request_rate, point.outcome.load.max_concurrency)
    stem = Path(out.result_filename).stem
    return f"{stem}-{point.request_rate:g}qps.json" if in_sweep else f"{stem}.json"


def _sweep_filename(out: OutputConfig, info: RunInfo) -> str:
    if out.result_filename:
        return f"{Path(out.result_filename).stem}-sweep.json"
    model = info.endpoint.model.split("/")[-1] or "model"
    return f"{out.label or info.backend}-{model}-{info.date}-sweep.json"
