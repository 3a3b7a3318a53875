"""PNG plots of a run or a sweep, and an HTML page that shows them.

Always: latency CDFs (TTFT, TPOT, ITL, E2EL; one line per request rate). With two or more
finite rates: throughput vs rate, p50/p99 TTFT and TPOT vs rate, and (when SLOs are set) SLO
attainment vs rate with the target line. Matplotlib runs on its Agg backend through an
explicit Figure, so nothing global is touched and no display is needed.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from loadgen.accumulate import MS_PER_S, weighted_percentile
from loadgen.sweep import SweepPoint

CDF_METRICS = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2el", "E2E latency"))


def write_plots(
    out_dir: Path, points: list[SweepPoint], target: float | None, title: str
) -> list[Path]:
    """Write the PNGs and `index.html` into `out_dir`; returns every file written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = [_save(_cdf_figure(points), out_dir / "latency_cdf.png")]
    finite = [p for p in points if not math.isinf(p.request_rate)]
    if len(finite) >= 2:
        pngs.append(_save(_throughput_figure(finite), out_dir / "throughput_vs_rate.png"))
        pngs.append(_save(_latency_vs_rate_figure(finite), out_dir / "latency_vs_rate.png"))
        if any(p.metrics.slo_attainment is not None for p in finite):
            pngs.append(
                _save(_attainment_figure(finite, target), out_dir / "slo_attainment_vs_rate.png")
            )
    page = out_dir / "index.html"
    page.write_text(_html(title, pngs, points), encoding="utf-8")
    return pngs + [page]


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _rate_label(rate: float) -> str:
    return "inf req/s" if math.isinf(rate) else f"{rate:g} req/s"


def _cdf_figure(points: list[SweepPoint]) -> Figure:
    fig = Figure(figsize=(11, 8))
    axes = fig.subplots(2, 2).ravel()
    for ax, (name, label) in zip(axes, CDF_METRICS):
        for point in points:
            values, weights = point.outcome.acc.samples(name)
            if len(values):
                order = np.argsort(values)
                cum = np.cumsum(np.ones(len(values)) if weights is None else weights[order])
                ax.plot(values[order] * MS_PER_S, cum / cum[-1],
                        label=_rate_label(point.request_rate))
        ax.set_xlabel(f"{label} (ms)")
        ax.set_ylabel("fraction of samples")
        ax.set_title(f"{label} CDF")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _throughput_figure(points: list[SweepPoint]) -> Figure:
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    rates = [p.request_rate for p in points]
    left.plot(rates, [p.metrics.request_throughput for p in points], "o-", label="throughput")
    if points[0].metrics.request_goodput is not None:
        left.plot(rates, [p.metrics.request_goodput for p in points], "s--", label="goodput")
    left.plot(rates, rates, ":", color="grey", label="offered")
    left.set(xlabel="request rate (req/s)", ylabel="req/s", title="Request throughput")
    right.plot(rates, [p.metrics.output_throughput for p in points], "o-")
    right.set(xlabel="request rate (req/s)", ylabel="tok/s", title="Output token throughput")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _percentile_ms(point: SweepPoint, name: str, p: float) -> float:
    values, weights = point.outcome.acc.samples(name)
    return weighted_percentile(values, weights, p) * MS_PER_S if len(values) else math.nan


def _latency_vs_rate_figure(points: list[SweepPoint]) -> Figure:
    fig = Figure(figsize=(11, 4))
    rates = [p.request_rate for p in points]
    for ax, (name, label) in zip(fig.subplots(1, 2), (("ttft", "TTFT"), ("tpot", "TPOT"))):
        for p, style in ((50, "o-"), (99, "s--")):
            ax.plot(rates, [_percentile_ms(pt, name, p) for pt in points], style, label=f"p{p}")
        ax.set(
            xlabel="request rate (req/s)", ylabel=f"{label} (ms)", title=f"{label} vs request rate"
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _attainment_figure(points: list[SweepPoint], target: float | None) -> Figure:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot([p.request_rate for p in points], [p.metrics.slo_attainment for p in points], "o-")
    if target is not None:
        ax.axhline(target, color="red", linestyle="--", label=f"target {target:g}")
        ax.legend(fontsize="small")
    ax.set(
        xlabel="request rate (req/s)",
        ylabel="SLO attainment",
        title="SLO attainment vs rate",
        ylim=(0, 1.05),
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _html(title: str, pngs: list[Path], points: list[SweepPoint]) -> str:
    rows = "".join(
        f"<tr><td>{_rate_label(p.request_rate)}</td><td>{p.metrics.completed}</td>"
        f"<td>{p.metrics.failed}</td><td>{p.metrics.request_throughput:.2f}</td>"
        f"<td>{p.metrics.stats['ttft'].median_ms:.1f}</td><td>{p.metrics.stats['tpot'].median_ms:.2f}</td>"
        f"<td>{'' if p.metrics.slo_attainment is None else f'{p.metrics.slo_attainment:.3f}'}</td></tr>"
        for p in points
    )
    images = "".join(
        f'<p><img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}"></p>' for p in pngs
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:right}</style>"
        f"</head><body><h1>{html.escape(title)}</h1><table><tr><th>rate</th><th>completed</th>"
        "<th>failed</th><th>req/s</th><th>median TTFT ms</th><th>median TPOT ms</th>"
        f"<th>SLO attainment</th></tr>{rows}</table>{images}</body></html>"
    )
