"""`supernode sim models`: the model-caching experiment (cold start, warm start, switching) for
N instances, M models and each cache choice, in the simulator (`supernode.sim.model_cache`).

Takes the cluster config as `supernode sim` does (`--config`, `--set KEY=VALUE`: hardware,
model, instance shapes, `cache.capacity_bytes`, `cache.plane`, `scheduler.switch_policy`,
`model_load.dram_cache_models`, ...). Prints a table, or with `--json` one object:
`results` is a list with, per cache, `cold_start_s`, `warm_start_s`, `switch_s` (mean),
`switch_max_s`, `num_switches` and `switch_sources`; the setup beside it.
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from supernode.sim.model_cache import CACHES, run_scenario


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="supernode sim models",
        description="Simulate cold start, warm start and model switching of N instances "
                    "serving M models, with no cache, a local DRAM cache and EMS "
                    "(model seconds).")
    p.add_argument("--config", help="deployment YAML (default: the embedded default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, dotted (e.g. cache.plane=vpc)")
    p.add_argument("--instances", type=int, default=8,
                   help="instances in all, half prefill and half decode (default 8)")
    p.add_argument("--models", type=int, default=8,
                   help="served models in the switching runs; more than the instances per "
                        "pool (default 8)")
    p.add_argument("--switches", type=int, default=8,
                   help="requests for an unheld model, one after another (default 8)")
    p.add_argument("--caches", default=",".join(CACHES),
                   help=f"cache choices to run, comma-separated (default {','.join(CACHES)})")
    p.add_argument("--seed", type=int, default=0, help="seeds the models asked for")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    base: dict[str, object] = {}
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--set expects KEY=VALUE, got {pair!r}")
        base[key] = yaml.safe_load(value)
    caches = tuple(c.strip() for c in args.caches.split(",") if c.strip())
    try:
        result = run_scenario(base, args.config, args.instances, args.models, args.switches,
                              args.seed, caches)
    except (ValueError, TypeError, KeyError, OSError) as e:
        parser.error(str(e))
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print(result)
    return 0


def _print(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=(
        f"model caching: {result['num_instances']} instances ({result['num_prefill']} prefill "
        f"x {result['prefill_devices']}, {result['num_decode']} decode x "
        f"{result['decode_devices']} {result['hardware']}), {result['model']}, "
        f"{result['num_models']} models, switch policy {result['switch_policy']}"))
    for column in ("cache", "cold start (s)", "warm start (s)", "switch, mean (s)",
                   "switch, max (s)", "switches", "loaded from"):
        table.add_column(column, justify="left" if column in ("cache", "loaded from")
                         else "right")
    for r in result["results"]:
        sources = ", ".join(f"{k} {v}" for k, v in sorted(r["switch_sources"].items()))
        table.add_row(r["cache"], f"{r['cold_start_s']:,.1f}", f"{r['warm_start_s']:,.2f}",
                      f"{r['switch_s']:,.2f}", f"{r['switch_max_s']:,.2f}",
                      str(r["num_switches"]), sources)
    Console().print(table)
