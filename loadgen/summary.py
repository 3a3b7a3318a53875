"""The console summary: vLLM's block layout ("Serving Benchmark Result", then one block per
latency metric) drawn as a rich table, followed by the distinct errors with their counts."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from loadgen.config import ReportConfig
from loadgen.metrics import BenchmarkMetrics
from loadgen.report import percentile_key
from loadgen.runner import RunOutcome

METRIC_HEADERS = {
    "ttft": ("TTFT", "Time to First Token"),
    "tpot": ("TPOT", "Time per Output Token (excl. 1st token)"),
    "itl": ("ITL", "Inter-token Latency"),
    "e2el": ("E2EL", "End-to-end Latency"),
}
MAX_ERRORS_SHOWN = 5


def summary_table(outcome: RunOutcome, metrics: BenchmarkMetrics, report: ReportConfig) -> Table:
    table = Table(title="Serving Benchmark Result", show_header=False, title_style="bold")
    table.add_column("metric", min_width=40)
    table.add_column("value", justify="right", min_width=12)
    for name, value in _overview_rows(outcome, metrics):
        table.add_row(name, value)
    for name in report.percentile_metrics:
        short, header = METRIC_HEADERS[name]
        stats = metrics.stats[name]
        table.add_section()
        table.add_row(f"[bold]{header}[/bold]", "")
        table.add_row(f"Mean {short} (ms):", f"{stats.mean_ms:.2f}")
        table.add_row(f"Median {short} (ms):", f"{stats.median_ms:.2f}")
        table.add_row(f"Std {short} (ms):", f"{stats.std_ms:.2f}")
        for p, value in stats.percentiles_ms:
            table.add_row(f"P{percentile_key(p)} {short} (ms):", f"{value:.2f}")
    return table


def _overview_rows(outcome: RunOutcome, m: BenchmarkMetrics) -> list[tuple[str, str]]:
    load = outcome.load
    rows = [("Successful requests:", str(m.completed)), ("Failed requests:", str(m.failed))]
    if load.max_concurrency is not None:
        rows.append(("Maximum request concurrency:", str(load.max_concurrency)))
    if not math.isinf(load.request_rate):
        rows.append(("Request rate configured (RPS):", f"{load.request_rate:.2f}"))
    rows += [
        ("Benchmark duration (s):", f"{m.duration_s:.2f}"),
        ("Total input tokens:", str(m.total_input_tokens)),
        ("Total generated tokens:", str(m.total_output_tokens)),
        ("Request throughput (req/s):", f"{m.request_throughput:.2f}"),
    ]
    if m.request_goodput is not None:
        rows.append(("Request goodput (req/s):", f"{m.request_goodput:.2f}"))
        rows.append(("SLO attainment:", f"{m.slo_attainment:.3f}"))
    if m.prefix_cache_hit_rate is not None:
        rows.append(("Total cached prompt tokens:", str(m.total_cached_tokens)))
        rows.append(("Prefix cache hit rate:", f"{m.prefix_cache_hit_rate:.3f}"))
    rows += [
        ("Output token throughput (tok/s):", f"{m.output_throughput:.2f}"),
        ("Peak output token throughput (tok/s):", f"{m.max_output_tokens_per_s:.2f}"),
        ("Peak concurrent requests:", str(m.max_concurrent_requests)),
        ("Total Token throughput (tok/s):", f"{m.total_token_throughput:.2f}"),
    ]
    return rows


def print_summary(
    console: Console, outcome: RunOutcome, metrics: BenchmarkMetrics, report: ReportConfig
) -> None:
    """Print the table, then up to five distinct error messages with how often each occurred."""
    console.print(summary_table(outcome, metrics, report))
    errors = outcome.acc.errors
    for error, count in errors.most_common(MAX_ERRORS_SHOWN):
        console.print(Text.assemble((f"{count} x ", "red"), error), highlight=False)
    if len(errors) > MAX_ERRORS_SHOWN:
        console.print(f"... and {len(errors) - MAX_ERRORS_SHOWN} more distinct errors")
