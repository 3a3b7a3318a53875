"""`supernode bench` (also `python -m loadgen`): flags follow `vllm bench serve`.

The parser only parses; `main` turns the namespace into frozen configs (`plan_from_args`) and
hands them to `loadgen.app.run_plan`. Bad flag values are argparse errors naming the flag.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import replace

from loadgen import options as opt
from loadgen.app import BenchPlan, OutputConfig, resolve_model, run_plan
from loadgen.config import EndpointConfig, LoadConfig, ReportConfig, SloConfig
from loadgen.workloads import (
    MooncakeTraceWorkload,
    PrefixRepetitionWorkload,
    RandomWorkload,
    ShareGptWorkload,
)

ID_DATASETS = ("random", "prefix_repetition", "mooncake")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supernode bench",
        description="Benchmark any OpenAI-compatible server: vLLM bench serve metrics, "
        "goodput under SLOs, request-rate sweeps, plots.",
    )
    _add_endpoint_args(parser.add_argument_group("endpoint"))
    add_dataset_args(parser.add_argument_group("workload"))
    add_load_args(parser.add_argument_group("load"))
    add_output_args(parser.add_argument_group("metrics and output"))
    return parser


def _add_endpoint_args(g) -> None:
    g.add_argument(
        "--base-url", help="server root, e.g. http://127.0.0.1:8000 (default: --host/--port)"
    )
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=opt.positive_int, default=8000)
    g.add_argument(
        "--endpoint", default="/v1/completions", choices=["/v1/completions", "/v1/chat/completions"]
    )
    g.add_argument("--model", help="model name (default: the first id from GET /v1/models)")
    g.add_argument("--api-key", help="bearer token (default: $OPENAI_API_KEY if set)")
    g.add_argument(
        "--header",
        type=opt.header_pair,
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra HTTP headers sent with every request",
    )
    g.add_argument(
        "--extra-body",
        type=opt.json_object,
        default={},
        help="JSON object merged into every request body",
    )
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument(
        "--request-timeout-s",
        type=opt.positive_float,
        default=3600.0,
        help="limit for one request (s)",
    )
    g.add_argument(
        "--speedup",
        type=opt.positive_finite_float,
        default=1.0,
        help="the server's model seconds per wall second (as `supernode up --speedup`): rates "
        "and trace times are taken, and every latency, duration and throughput is reported, "
        "in model time (default 1.0: model time = wall time)",
    )
    g.add_argument(
        "--tokens-as-ids",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send synthetic prompts as token ids on /v1/completions so lengths are exact",
    )


def add_dataset_args(g) -> None:
    g.add_argument(
        "--dataset-name",
        type=opt.dataset_name,
        default="random",
        help="random | sharegpt | prefix_repetition | mooncake (a JSONL trace)",
    )
    g.add_argument("--dataset-path", help="ShareGPT JSON or Mooncake JSONL file")
    g.add_argument(
        "--num-prompts",
        type=opt.positive_int,
        default=1000,
        help="requests per run (trace: at most)",
    )
    g.add_argument("--random-input-len", type=opt.positive_int, default=1024)
    g.add_argument("--random-output-len", type=opt.positive_int, default=128)
    g.add_argument("--random-range-ratio", type=opt.ratio_below_one, default=0.0)
    g.add_argument("--random-prefix-len", type=opt.non_negative_int, default=0)
    g.add_argument("--sharegpt-output-len", type=opt.positive_int, default=None)
    g.add_argument("--prefix-repetition-prefix-len", type=opt.non_negative_int, default=256)
    g.add_argument("--prefix-repetition-suffix-len", type=opt.non_negative_int, default=256)
    g.add_argument("--prefix-repetition-num-prefixes", type=opt.positive_int, default=10)
    g.add_argument("--prefix-repetition-output-len", type=opt.positive_int, default=128)
    g.add_argument(
        "--prefix-repetition-reuse-rate",
        type=opt.fraction,
        default=None,
        help="probability a request reuses a seen prefix (overrides --prefix-repetition-num-prefixes)",
    )
    g.add_argument(
        "--mooncake-block-size", type=opt.positive_int, default=512, help="tokens per trace hash id"
    )
    g.add_argument(
        "--trace-time-scale",
        type=opt.positive_float,
        default=1.0,
        help="replay speed-up: trace timestamps are divided by this",
    )


def add_load_args(g) -> None:
    g.add_argument(
        "--request-rate",
        type=opt.request_rates,
        default=(float("inf"),),
        help="req/s of model time: inf, 4, a sweep 2,4,8,16, or a range "
        "1:16:1 / 1:32:x2",
    )
    g.add_argument(
        "--burstiness",
        type=opt.positive_float,
        default=1.0,
        help="gamma shape: 1 Poisson, <1 burstier",
    )
    g.add_argument("--max-concurrency", type=opt.positive_int, default=None)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--send-seeds",
        action="store_true",
        help="give every request its own seed derived from --seed (reproducible output; "
        "supernode sim seeds its requests the same way)",
    )
    g.add_argument(
        "--num-warmups", type=opt.non_negative_int, default=0, help="warm-up requests, not counted"
    )
    g.add_argument(
        "--ignore-eos",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send ignore_eos (default: on for synthetic datasets, as vLLM does for random)",
    )


def add_output_args(g) -> None:
    g.add_argument(
        "--goodput",
        type=opt.slo_pair,
        nargs="+",
        default=[],
        metavar="KEY:MS",
        help="SLOs, e.g. ttft:500 tpot:50 e2el:10000",
    )
    g.add_argument(
        "--slo-attainment",
        type=opt.attainment,
        default=0.9,
        help="fraction of requests that must meet the SLOs for a rate to pass",
    )
    g.add_argument(
        "--sweep-bisect-steps",
        type=opt.non_negative_int,
        default=0,
        help="after a sweep, bisect toward the highest passing rate this many times",
    )
    g.add_argument(
        "--percentile-metrics", type=opt.metric_names, default=("ttft", "tpot", "itl", "e2el")
    )
    g.add_argument("--metric-percentiles", type=opt.percentiles, default=(50.0, 90.0, 99.0))
    g.add_argument(
        "--save-result",
        action="store_true",
        help="write the vLLM-schema JSON and a per-request CSV",
    )
    g.add_argument(
        "--save-detailed", action="store_true", help="include per-request arrays in the JSON"
    )
    g.add_argument(
        "--reuse-prompts",
        action="store_true",
        help="send every rate (and every run with the same --seed) the same prompts, e.g. to "
        "measure a warm prefix cache (default: fresh prompts per point and per run)",
    )
    g.add_argument("--result-dir", default=None)
    g.add_argument("--result-filename", default=None)
    g.add_argument("--label", default=None)
    g.add_argument(
        "--plots",
        action="store_true",
        help="write PNG plots and index.html under <result-dir>/plots",
    )
    g.add_argument(
        "--disable-tqdm",
        "--no-progress",
        dest="no_progress",
        action="store_true",
        help="no progress bar",
    )


def workload_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser):
    name = args.dataset_name
    if name in ("sharegpt", "mooncake") and not args.dataset_path:
        parser.error(f"--dataset-path is required with --dataset-name {name}")
    if name == "random":
        return RandomWorkload(
            args.random_input_len,
            args.random_output_len,
            args.random_range_ratio,
            args.random_prefix_len,
        )
    if name == "prefix_repetition":
        if args.prefix_repetition_prefix_len + args.prefix_repetition_suffix_len < 1:
            parser.error(
                "--prefix-repetition-prefix-len + --prefix-repetition-suffix-len must be >= 1"
            )
        return PrefixRepetitionWorkload(
            args.prefix_repetition_prefix_len,
            args.prefix_repetition_suffix_len,
            args.prefix_repetition_num_prefixes,
            args.prefix_repetition_output_len,
            args.prefix_repetition_reuse_rate,
        )
    if name == "sharegpt":
        return ShareGptWorkload(args.dataset_path, args.sharegpt_output_len)
    return MooncakeTraceWorkload(args.dataset_path, args.mooncake_block_size)


def ignore_eos_from_args(args: argparse.Namespace) -> bool:
    """`--ignore-eos`, defaulting to on for synthetic (token-id) datasets as vLLM does."""
    return args.ignore_eos if args.ignore_eos is not None else args.dataset_name in ID_DATASETS


def endpoint_from_args(args: argparse.Namespace) -> EndpointConfig:
    return EndpointConfig(
        base_url=args.base_url or f"http://{args.host}:{args.port}",
        endpoint=args.endpoint,
        model=args.model or "",
        api_key=args.api_key or os.environ.get("OPENAI_API_KEY"),
        ignore_eos=ignore_eos_from_args(args),
        temperature=args.temperature,
        extra_body=args.extra_body,
        headers=dict(args.header),
        request_timeout_s=args.request_timeout_s,
        speedup=args.speedup,
        send_seeds=args.send_seeds,
    )


def plan_from_args(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    endpoint: EndpointConfig | None = None,
) -> BenchPlan:
    """Frozen configs from parsed flags; cross-flag problems are argparse errors. `endpoint`
    replaces the one the endpoint flags describe (the simulator has none)."""
    endpoint = endpoint or endpoint_from_args(args)
    load = LoadConfig(
        request_rate=args.request_rate[0],
        burstiness=args.burstiness,
        max_concurrency=args.max_concurrency,
        num_warmups=args.num_warmups,
        seed=args.seed,
        time_scale=args.trace_time_scale,
    )
    output = OutputConfig(
        save_result=args.save_result,
        save_detailed=args.save_detailed,
        result_dir=args.result_dir,
        result_filename=args.result_filename,
        label=args.label,
        plots=args.plots,
        progress=not args.no_progress,
        reuse_prompts=args.reuse_prompts,
    )
    return BenchPlan(
        endpoint=endpoint,
        load=load,
        rates=args.request_rate,
        workload=workload_from_args(args, parser),
        dataset_name=args.dataset_name,
        num_prompts=args.num_prompts,
        report=ReportConfig(args.percentile_metrics, args.metric_percentiles),
        slo=SloConfig(dict(args.goodput), args.slo_attainment),
        output=output,
        tokens_as_ids=getattr(args, "tokens_as_ids", True),
        bisect_steps=args.sweep_bisect_steps,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the benchmark, return the exit status:
    0 when every request of every point completed, 1 when any failed, 2 on a usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    plan = plan_from_args(args, parser)
    try:
        if not plan.endpoint.model:
            plan = replace(
                plan,
                endpoint=replace(plan.endpoint, model=asyncio.run(resolve_model(plan.endpoint))),
            )
        return asyncio.run(run_plan(plan))
    except (OSError, ValueError, TypeError) as exc:
        print(f"supernode bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
