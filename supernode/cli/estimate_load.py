"""``supernode estimate load``: cold and warm start of N instances, and one model switch.

``--source`` is the cache choice: ``obs`` (no cache), ``dram`` (a copy in each node's host
DRAM) or ``ems`` (the EMS pool); see ``supernode.perf.load.start_times`` for what cold and warm
mean for each. ``--json`` prints one object: ``cold_start_s``, ``warm_start_s``, ``switch_s``
and ``breakdown`` (``{"cold_start": {part: s}, "warm_start": {...}, "switch": {...}}``), plus
``bounds``, ``notes``, ``model_bytes``, ``bytes_per_device`` and ``deployment``.
"""

from __future__ import annotations

import argparse
import json
import sys

from supernode.perf import Deployment
from supernode.perf.load import EMS_PLANES, SOURCES, model_image, start_times, switch_time
from supernode.perf.timing import Timing

_STARTS = ("cold_start", "warm_start", "switch")


def add_parser(sub: argparse._SubParsersAction, positive) -> None:
    """Register ``load`` on the ``estimate`` subparsers; ``positive`` is its number type."""
    p = sub.add_parser("load", help="cold/warm start and model switch of N instances")
    p.add_argument("--hardware", default="ascend-910c", help="hardware profile (default ascend-910c)")
    p.add_argument("--model", default="deepseek-r1", help="model profile (default deepseek-r1)")
    p.add_argument("--devices", type=positive(int), required=True, help="devices per instance")
    p.add_argument("--dp", type=positive(int), help="attention DP degree (default: all dies / tp)")
    p.add_argument("--tp", type=positive(int), help="attention TP degree (default 1)")
    p.add_argument("--ep", type=positive(int), help="expert-parallel degree (default: all dies)")
    p.add_argument("--quant", default="int8", choices=("int8", "fp8", "bf16", "fp16"),
                   help="weight datatype (default int8)")
    p.add_argument("--mtp", type=positive(int, allow_zero=True), default=0,
                   help="MTP tokens per step; > 0 loads the MTP layers too (default 0)")
    p.add_argument("--source", required=True, choices=SOURCES,
                   help="cache choice: obs (none), dram (each node's DRAM) or ems")
    p.add_argument("--instances", type=positive(int), default=1,
                   help="instances starting at once (default 1)")
    p.add_argument("--plane", default="ub", choices=EMS_PLANES,
                   help="plane EMS is read over (default ub)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        result = estimate(args)
    except ValueError as err:
        parser.error(str(err))
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(result)
    return 0


def estimate(args: argparse.Namespace) -> dict:
    """The JSON object ``--json`` prints."""
    d = Deployment.build(args.hardware, args.model, args.devices, dp=args.dp, tp=args.tp,
                         ep=args.ep, quant=args.quant, mtp_tokens=args.mtp)
    starts = start_times(d, args.source, args.instances, plane=args.plane)
    switch = switch_time(d, args.source, plane=args.plane)
    timings: dict[str, Timing] = {"cold_start": starts.cold, "warm_start": starts.warm,
                                  "switch": switch}
    image = model_image(d)
    return {
        "source": args.source, "num_instances": args.instances, "plane": args.plane,
        "cold_start_s": starts.cold.total_s, "warm_start_s": starts.warm.total_s,
        "switch_s": switch.total_s,
        "breakdown": {k: dict(t.breakdown) for k, t in timings.items()},
        "overlap_s": {k: t.overlap_s for k, t in timings.items()},
        "bounds": {k: dict(t.bounds) for k, t in timings.items()},
        "notes": {k: list(t.notes) for k, t in timings.items()},
        "model_bytes": image.model_bytes, "bytes_per_device": image.bytes_per_device,
        "deployment": {"hardware": d.hardware.name, "model": d.model.name,
                       "num_devices": d.num_devices, "dp": d.dp, "tp": d.tp, "ep": d.ep,
                       "quant": d.quant, "mtp_tokens": d.mtp_tokens},
    }


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    dep = result["deployment"]
    table = Table(title=f"load: {result['num_instances']} x {dep['model']} on "
                        f"{dep['num_devices']} x {dep['hardware']} ({dep['quant']}), "
                        f"cache {result['source']}")
    table.add_column("part")
    for start in _STARTS:
        table.add_column(f"{start} s", justify="right")
    parts = dict.fromkeys(p for s in _STARTS for p in result["breakdown"][s])
    for part in parts:
        table.add_row(part, *(_cell(result["breakdown"][s].get(part)) for s in _STARTS))
    table.add_row("(hidden by overlap)", *(_cell(-result["overlap_s"][s]) for s in _STARTS))
    table.add_row("total", *(_cell(result[f"{s}_s"]) for s in _STARTS))
    console = Console()
    console.print(table)
    console.print(f"model: {result['model_bytes'] / 1e9:,.1f} GB; per device: "
                  f"{result['bytes_per_device'] / 1e9:,.2f} GB")
    for start in _STARTS:
        for note in result["notes"][start]:
            console.print(f"{start}: {note}")


def _cell(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:,.3f}"
