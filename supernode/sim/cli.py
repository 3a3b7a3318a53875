"""`supernode sim`: the offline simulator, in virtual time, with `supernode bench`'s report.

Takes the cluster config as `supernode up` does (`--config`, `--set KEY=VALUE`) and the
workload, arrival and output flags of `supernode bench` (the same parser pieces, workloads,
metrics, summary table, `--save-result` JSON/CSV and plots). Units are bench's: request rates,
trace times and every reported latency, duration and throughput are in model seconds, so the
report matches `supernode bench --speedup S` against `supernode up` with this config at
speedup S (the config's `speedup` is recorded in the result JSON and changes no figure).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from loadgen import cli as bench_cli
from loadgen.app import PointSamples, run_plan
from loadgen.config import EndpointConfig, LoadConfig
from loadgen.runner import OnResult
from supernode.config import ClusterConfig, load_config
from supernode.deployment import check_deployment, check_memory, overcommit_message
from supernode.sim import sweep
from supernode.sim.runner import SimStats, simulate_point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supernode sim",
        description="Simulate a deployment offline in virtual time and report as "
        "`supernode bench --speedup S` does against it (rates and figures in model seconds).",
    )
    g = parser.add_argument_group("cluster")
    g.add_argument("--config", help="deployment YAML (default: the embedded default)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, dotted (e.g. decode.num_devices=32)")
    g.add_argument("--allow-overcommit", action="store_true",
                   help="simulate instances whose weights and minimum KV do not fit in HBM")
    s = parser.add_argument_group("knob sweep")
    s.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                   help="simulate every value of this config field (dotted, as --set); several "
                        "--sweep flags: their cross product, at every --request-rate")
    s.add_argument("--sweep-workers", type=int, default=None, metavar="N",
                   help="local processes running sweep points (default: one per core)")
    s.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="run sweep points on this Ray cluster instead (pip install "
                        "'supernode[ray]')")
    bench_cli.add_dataset_args(parser.add_argument_group("workload"))
    bench_cli.add_load_args(parser.add_argument_group("load"))
    bench_cli.add_output_args(parser.add_argument_group("metrics and output"))
    return parser


def overrides_from_args(args: argparse.Namespace,
                        parser: argparse.ArgumentParser) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[key] = yaml.safe_load(value)
    if args.allow_overcommit:
        overrides["allow_overcommit"] = True
    return overrides


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ClusterConfig:
    overrides = overrides_from_args(args, parser)
    try:
        config = load_config(args.config, overrides)
        check_deployment(config)
        problems = check_memory(config)
    except (ValueError, TypeError, OSError, KeyError) as e:
        parser.error(f"--config/--set: {e}")
    if problems and not config.allow_overcommit:
        parser.exit(2, f"supernode sim: {overcommit_message(problems)}\n")
    if problems:
        print("supernode sim: OVERCOMMITTED (--allow-overcommit): " + "; ".join(problems),
              file=sys.stderr)
    return config


def main(argv: list[str] | None = None) -> int:
    """Parse, simulate every rate, report; 0 when any request completed, 1 otherwise.
    `supernode sim models ...` runs the model-caching experiment instead (cli_models)."""
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["models"]:
        from supernode.sim import cli_models

        return cli_models.main(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    endpoint = EndpointConfig(f"sim://{config.model_name}", model=config.model_name,
                              ignore_eos=bench_cli.ignore_eos_from_args(args),
                              speedup=config.speedup)
    plan = bench_cli.plan_from_args(args, parser, endpoint)
    console = Console()
    if args.sweep or args.ray_address:
        return _sweep(args, parser, plan, console)
    stats = SimStats()

    async def execute(samples: PointSamples, load: LoadConfig, on_result: OnResult):
        started = time.perf_counter()
        outcome = simulate_point(config, samples, load, endpoint.ignore_eos, on_result, stats,
                                 plan.slo, plan.output.save_detailed)
        console.print(f"simulated {outcome.acc.num_requests} requests, {stats.model_s:.1f} model s, "
                      f"{stats.num_events} events in {time.perf_counter() - started:.2f} s")
        return outcome

    try:
        return asyncio.run(run_plan(plan, console, execute, simulated=True))
    except (OSError, ValueError) as exc:
        print(f"supernode sim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


def _sweep(args: argparse.Namespace, parser: argparse.ArgumentParser, plan,
           console: Console) -> int:
    """`--sweep`: every knob combination at every rate, in parallel; a table, JSON and plots."""
    if not args.sweep:
        parser.error("--ray-address runs a sweep: give at least one --sweep KEY=V1,V2")
    try:
        knobs = [sweep.parse_knob(text) for text in args.sweep]
        base = {"__config__": args.config, **overrides_from_args(args, parser)}
        samples = PointSamples(plan.workload, plan.num_prompts, plan.load.seed)
        date = f"{datetime.now():%Y%m%d-%H%M%S}"
        tasks = sweep.sweep_tasks(base, knobs, plan.rates, samples, plan.load, plan.slo,
                                  plan.report, plan.endpoint.ignore_eos, plan.dataset_name, date)
    except ValueError as e:
        parser.error(str(e))
    where = f"Ray at {args.ray_address}" if args.ray_address else "local processes"
    console.print(f"sweep: {len(tasks)} points on {where}")
    started = time.perf_counter()
    try:
        points = sweep.run_sweep(tasks, args.sweep_workers, args.ray_address,
                                 lambda p: console.print(f"  done {p['knobs']} @ "
                                                         f"{p['result']['request_rate']} req/s"))
    except ValueError as e:
        print(f"supernode sim: error: {e}", file=sys.stderr)
        return 2
    console.print(_table(points, knobs))
    stem = plan.output.result_filename or f"sim-sweep-{tasks[0].date}"
    for path in sweep.write_sweep(points, knobs, Path(plan.output.result_dir or "."),
                                  Path(stem).stem):
        console.print(f"wrote {path}")
    console.print(f"{len(points)} points in {time.perf_counter() - started:.1f} s")
    return 0 if any(p["result"]["completed"] for p in points) else 1


def _table(points: list[dict], knobs: list[sweep.Knob]) -> Table:
    rows = sweep.table_rows(points)
    table = Table(title="Sweep", title_style="bold")
    for column in rows[0]:
        table.add_column(sweep.TABLE_HEADERS.get(column, column), justify="right")
    for row in rows:
        table.add_row(*(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()))
    return table
