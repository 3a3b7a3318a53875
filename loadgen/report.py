"""Result files: vLLM's `--save-result` JSON and a per-request CSV.

The JSON has vLLM `bench serve`'s top-level keys with the same names and units (throughputs
per second, latency statistics in ms as `{mean,median,std,pNN}_{ttft,tpot,itl,e2el}_ms`,
per-request arrays in seconds), so tools that read vLLM results read ours. As in vLLM the
per-request arrays (`input_lens`, `output_lens`, `ttfts`, `itls`, `generated_texts`,
`errors`) are included only when `detailed`; `ttfts` then holds 0.0 for failed requests as
vLLM's does. Keys vLLM does not have are added beside them: `slo_attainment`,
`goodput_slos_ms`, `num_good_requests`, `error_counts` (always present, so errors are never
lost from the file), `request_rate_achieved` (requests sent per second between the first and
the last send), `total_cached_tokens` and `prefix_cache_hit_rate` (prompt tokens the server
reported as served from its prefix cache, and their share of all prompt tokens), `simulated`
(true for `supernode sim` results, whose `backend` is `supernode-sim`) and `speedup`: the
server's model seconds per wall second the run assumed. Every time, rate and throughput in the file is in model seconds
(wall x `speedup`; the same as wall time for speedup 1, i.e. any real server).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from loadgen.config import EndpointConfig, ReportConfig, SloConfig
from loadgen.metrics import MS_PER_S, BenchmarkMetrics, meets_slo
from loadgen.runner import RunOutcome


@dataclass(frozen=True)
class RunInfo:
    """What describes a run in the result header; `label` defaults to the backend name."""

    endpoint: EndpointConfig
    num_prompts: int
    label: str | None = None
    dataset_name: str = "random"
    date: str = ""
    simulated: bool = False

    @property
    def backend(self) -> str:
        """vLLM's backend name, or `supernode-sim` for the offline simulator."""
        return "supernode-sim" if self.simulated else self.endpoint.backend


def percentile_key(p: float) -> str:
    """vLLM's spelling of a percentile in a key: 99 -> "99", 99.9 -> "99.9"."""
    return str(int(p)) if int(p) == p else str(p)


def result_dict(
    info: RunInfo,
    outcome: RunOutcome,
    metrics: BenchmarkMetrics,
    report: ReportConfig,
    slo: SloConfig,
    detailed: bool = False,
) -> dict:
    """The run as a vLLM-schema result dictionary (JSON-serialisable)."""
    load = outcome.load
    result: dict = {
        "date": info.date or datetime.now().strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": info.endpoint.backend,
        "backend": info.backend,
        "simulated": info.simulated,
        "label": info.label,
        "model_id": info.endpoint.model,
        "tokenizer_id": info.endpoint.model,
        "num_prompts": info.num_prompts,
        "dataset_name": info.dataset_name,
        "request_rate": "inf" if math.isinf(load.request_rate) else load.request_rate,
        "burstiness": load.burstiness,
        "speedup": info.endpoint.speedup,
        "max_concurrency": load.max_concurrency,
        "duration": metrics.duration_s,
        "completed": metrics.completed,
        "failed": metrics.failed,
        "total_input_tokens": metrics.total_input_tokens,
        "total_output_tokens": metrics.total_output_tokens,
        "request_throughput": metrics.request_throughput,
        "request_goodput": metrics.request_goodput,
        "output_throughput": metrics.output_throughput,
        "total_token_throughput": metrics.total_token_throughput,
        "max_output_tokens_per_s": metrics.max_output_tokens_per_s,
        "max_concurrent_requests": metrics.max_concurrent_requests,
        "request_rate_achieved": _number(metrics.request_rate_achieved),
        "total_cached_tokens": metrics.total_cached_tokens,
        "prefix_cache_hit_rate": metrics.prefix_cache_hit_rate,
        "slo_attainment": metrics.slo_attainment,
        "goodput_slos_ms": dict(slo.limits_ms) or None,
        "num_good_requests": metrics.num_good,
        "error_counts": dict(outcome.acc.errors),
    }
    for name in report.percentile_metrics:
        stats = metrics.stats[name]
        result[f"mean_{name}_ms"] = stats.mean_ms
        result[f"median_{name}_ms"] = stats.median_ms
        result[f"std_{name}_ms"] = stats.std_ms
        for p, value in stats.percentiles_ms:
            result[f"p{percentile_key(p)}_{name}_ms"] = value
    if detailed and outcome.results is not None:
        result.update(_details(outcome))
    return result


def _number(value: float) -> float | str:
    """JSON has no infinity: vLLM writes "inf"."""
    return "inf" if math.isinf(value) else value


def _details(outcome: RunOutcome) -> dict:
    rs = outcome.results
    return {
        "input_lens": [r.prompt_len for r in rs],
        "output_lens": [r.output_tokens if r.success else 0 for r in rs],
        "ttfts": [r.ttft_s if r.success else 0.0 for r in rs],
        "itls": [list(r.itls_s) if r.success else [] for r in rs],
        "generated_texts": [r.generated_text for r in rs],
        "errors": [r.error for r in rs],
    }


def default_result_filename(info: RunInfo, request_rate: float, max_concurrency: int | None) -> str:
    """vLLM's naming: `{label}-{rate}qps[-concurrency{N}]-{model}-{date}.json`."""
    label = info.label or info.backend
    concurrency = f"-concurrency{max_concurrency}" if max_concurrency is not None else ""
    model = info.endpoint.model.split("/")[-1] or "model"
    return f"{label}-{request_rate}qps{concurrency}-{model}-{info.date}.json"


CSV_COLUMNS = (
    "index",
    "success",
    "started_at_s",
    "prompt_len",
    "expected_output_len",
    "output_tokens",
    "ttft_ms",
    "tpot_ms",
    "e2el_ms",
    "mean_itl_ms",
    "max_itl_ms",
    "num_chunks",
    "met_slo",
    "cached_tokens",
    "modelled_ttft_ms",
    "modelled_tpot_ms",
    "error",
)
"""`modelled_*`: the server's own modelled figures for the request (supernode's
`server_details`), empty when the server sends none."""


def write_requests_csv(path: Path, outcome: RunOutcome, slo: SloConfig) -> None:
    """One row per request, failures included, with the error text."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for index, r in enumerate(outcome.results):
            writer.writerow(_csv_row(index, r, slo))


def _csv_row(index: int, r, slo: SloConfig) -> list:
    def ms(value_s: float | None) -> str:
        return "" if value_s is None else f"{value_s * MS_PER_S:.3f}"

    num_chunks = len(r.itls_s) + (r.ttft_s is not None)
    return [
        index,
        int(r.success),
        f"{r.started_at_s:.6f}",
        r.prompt_len,
        r.expected_output_len,
        r.output_tokens,
        ms(r.ttft_s),
        ms(r.tpot_s),
        ms(r.latency_s),
        ms(sum(r.itls_s) / len(r.itls_s) if r.itls_s else None),
        ms(max(r.itls_s) if r.itls_s else None),
        num_chunks,
        "" if not slo.enabled else int(meets_slo(r, slo)),
        "" if r.cached_tokens is None else r.cached_tokens,
        ms(r.server_details.get("modelled_ttft_s")),
        ms(r.server_details.get("modelled_tpot_s")),
        r.error,
    ]
