"""Knob sweeps: `supernode sim --sweep KEY=V1,V2 ...` over the cross product of deployment knobs.

A knob is any config field, dotted as for `--set` (`num_prefill`, `decode.ep`,
`decode.max_num_seqs_per_die`, `decode.mtp_acceptance`, `cache.capacity_bytes`, `cache.plane`,
`routing_policy`, `hardware`, ...). Every combination of the knobs' values, at every request
rate, is one point: a whole simulation of the same workload. Points run in parallel local
processes (`workers`, default one per core), or on an existing Ray cluster (`ray_address`; Ray
is the optional `ray` extra): the same function runs either way and a simulation is
deterministic, so both give identical results. Results come back as vLLM-schema result
dictionaries plus the point's knob values; `write_sweep` writes one table (CSV), one JSON and
plots of goodput and latency against the knobs.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from loadgen.app import PointSamples
from loadgen.config import EndpointConfig, LoadConfig, ReportConfig, SloConfig
from loadgen.metrics import compute_metrics
from loadgen.report import RunInfo, result_dict
from supernode.config import ClusterConfig, load_config, to_dict
from supernode.deployment import check_deployment
from supernode.sim.runner import simulate_point

Knob = tuple[str, tuple[Any, ...]]
"""A config field (dotted) and the values it takes."""
TABLE_FIGURES = ("completed", "failed", "request_throughput", "request_goodput",
                 "output_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms",
                 "p99_tpot_ms", "mean_e2el_ms")
"""The result keys in a point's row (vLLM's names)."""
TABLE_HEADERS = {"request_rate": "rate", "completed": "done", "failed": "failed",
                 "request_throughput": "req/s", "request_goodput": "goodput",
                 "output_throughput": "tok/s", "median_ttft_ms": "TTFT p50 ms",
                 "p99_ttft_ms": "TTFT p99 ms", "median_tpot_ms": "TPOT p50 ms",
                 "p99_tpot_ms": "TPOT p99 ms", "mean_e2el_ms": "E2E mean ms"}
"""Short console headers of those keys."""


def parse_knob(text: str) -> Knob:
    """`KEY=V1,V2,...` (values parsed as YAML scalars); ValueError naming what is wrong."""
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise ValueError(f"--sweep expects KEY=V1,V2,..., got {text!r}")
    return key.strip(), tuple(yaml.safe_load(v) for v in values.split(","))


@dataclass(frozen=True)
class SweepTask:
    """One point: everything a worker process needs, picklable."""

    config: ClusterConfig
    knobs: tuple[tuple[str, Any], ...]
    samples: PointSamples
    load: LoadConfig
    slo: SloConfig
    report: ReportConfig
    ignore_eos: bool
    dataset_name: str
    date: str
    """The sweep's date stamp, the same in every point's result."""


def sweep_tasks(base: dict[str, Any], knobs: Sequence[Knob], rates: Sequence[float],
                samples: PointSamples, load: LoadConfig, slo: SloConfig, report: ReportConfig,
                ignore_eos: bool, dataset_name: str, date: str = "") -> list[SweepTask]:
    """One task per combination of knob values and rate; ValueError names a bad combination.

    `base` is the dotted-key overrides every point shares (`--config`'s path under
    "__config__", then `--set`s)."""
    tasks = []
    for values in itertools.product(*(v for _, v in knobs)):
        point = tuple(zip((k for k, _ in knobs), values))
        overrides = {k: v for k, v in base.items() if k != "__config__"} | dict(point)
        try:
            config = load_config(base.get("__config__"), overrides)
            check_deployment(config)
        except (ValueError, TypeError, KeyError, OSError) as e:
            raise ValueError(f"sweep point {dict(point)}: {e}") from None
        tasks += [SweepTask(config, point, samples, replace(load, request_rate=rate), slo,
                            report, ignore_eos, dataset_name, date) for rate in rates]
    return tasks


def run_task(task: SweepTask) -> dict[str, Any]:
    """Simulate one point; its knob values and its vLLM-schema result (JSON-ready)."""
    config = task.config
    outcome = simulate_point(config, task.samples, task.load, task.ignore_eos, slo=task.slo)
    metrics = compute_metrics(outcome.acc, outcome.duration_s, task.report)
    endpoint = EndpointConfig(f"sim://{config.model_name}", model=config.model_name,
                              ignore_eos=task.ignore_eos, speedup=config.speedup)
    info = RunInfo(endpoint, task.samples.num_prompts, None, task.dataset_name, task.date, True)
    return {"knobs": dict(task.knobs), "config": to_dict(config),
            "result": result_dict(info, outcome, metrics, task.report, task.slo)}


def run_sweep(tasks: Sequence[SweepTask], workers: int | None = None,
              ray_address: str | None = None,
              on_done: Callable[[dict[str, Any]], None] = lambda point: None
              ) -> list[dict[str, Any]]:
    """Run every task, in parallel processes or on a Ray cluster; results in task order."""
    if ray_address is not None:
        return _run_on_ray(tasks, ray_address, on_done)
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        return [_done(run_task(t), on_done) for t in tasks]
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        return [_done(r, on_done) for r in pool.map(run_task, tasks)]


def _done(point: dict[str, Any], on_done: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    on_done(point)
    return point


def _run_on_ray(tasks: Sequence[SweepTask], address: str,
                on_done: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    try:
        import ray  # the optional `ray` extra: imported only when a sweep asks for it
    except ImportError:
        raise ValueError("--ray-address needs Ray: pip install 'supernode[ray]'") from None
    ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
    try:
        remote = ray.remote(num_cpus=1)(run_task)
        refs = [remote.remote(t) for t in tasks]
        return [_done(point, on_done) for point in ray.get(refs)]
    finally:
        ray.shutdown()


# ---- output
def table_rows(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per point: its knobs, its rate, the figures of TABLE_FIGURES."""
    rows = []
    for point in points:
        result = point["result"]
        rows.append({**point["knobs"], "request_rate": result["request_rate"],
                     **{name: result.get(name) for name in TABLE_FIGURES}})
    return rows


def write_sweep(points: Sequence[dict[str, Any]], knobs: Sequence[Knob], out_dir: Path,
                stem: str) -> list[Path]:
    """`<stem>.json` (every point's knobs, config and result), `<stem>.csv` (the table) and
    plots of goodput and latency against the knobs; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = table_rows(points)
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps({"knobs": {k: list(v) for k, v in knobs},
                                     "points": list(points)}, indent=2, default=str),
                         encoding="utf-8")
    csv_path = out_dir / f"{stem}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return [json_path, csv_path, _plot(rows, knobs, out_dir / f"{stem}.png")]


def _plot(rows: list[dict[str, Any]], knobs: Sequence[Knob], path: Path) -> Path:
    """Goodput (or throughput), p50/p99 TTFT and TPOT against the first knob; one line per
    combination of the other knobs and the rate."""
    x_key = knobs[0][0]
    x_values = list(knobs[0][1])
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x_values)
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        label = ", ".join(f"{k}={row[k]}" for k, _ in knobs[1:])
        label = f"{label}{', ' if label else ''}{row['request_rate']} req/s"
        series.setdefault(label, []).append(row)
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3)
    panels = (("request_goodput", "request_throughput", "req/s", "goodput (throughput)"),
              ("median_ttft_ms", "p99_ttft_ms", "ms", "TTFT p50 (-) / p99 (--)"),
              ("median_tpot_ms", "p99_tpot_ms", "ms", "TPOT p50 (-) / p99 (--)"))
    for ax, (first, second, unit, title) in zip(axes, panels):
        for label, group in series.items():
            xs = [r[x_key] if numeric else x_values.index(r[x_key]) for r in group]
            if first == "request_goodput":
                ys = [r[first] if r[first] is not None else r[second] for r in group]
                ax.plot(xs, ys, "o-", label=label)
            else:
                line = ax.plot(xs, [r[first] for r in group], "o-", label=label)[0]
                ax.plot(xs, [r[second] for r in group], "s--", color=line.get_color())
        if not numeric:
            ax.set_xticks(range(len(x_values)), [str(v) for v in x_values])
        ax.set(xlabel=x_key, ylabel=unit, title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
