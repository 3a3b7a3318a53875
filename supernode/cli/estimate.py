"""``supernode estimate decode|prefill|reuse``: ask the hardware model about one configuration.

Prints a readable table, or with ``--json`` one JSON object. Seconds in JSON (``*_s``).
decode: ``step_s``, ``tpot_s``, ``tokens_per_s_per_device``, ``expected_tokens_per_step``,
``mtp_s_per_step``; prefill: ``batch_s``, ``fetch_s`` (the cache fetch, ``--plane``),
``tokens_per_s_per_device``, ``regime`` (what bounds the batch); both: ``breakdown``,
``bounds``, ``notes``. reuse: an EMS context-caching experiment, ``points`` with throughput
and TTFT at each reuse rate, without a cache and from EMS over UB and over VPC.
"""

from __future__ import annotations

import argparse
import json
import sys

from supernode.cli import estimate_load
from supernode.perf import Deployment, estimate_decode, estimate_prefill, kv_capacity_tokens
from supernode.perf.reuse import reuse_experiment
from supernode.perf.timing import Timing

PLANES = {"ub": "ems_ub", "vpc": "ems_vpc"}


def eplb_arg(text: str) -> str | float:
    """``perfect``, ``default`` or an imbalance factor >= 1 (busiest / mean rank load)."""
    if text in ("perfect", "default"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'perfect', 'default' or a number >= 1, got {text!r}") from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"imbalance factor must be >= 1, got {text!r}")
    return value


def _positive(kind, allow_zero: bool = False):
    """An argparse type: ``kind(text)`` that must be > 0 (or >= 0 with ``allow_zero``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"must be {'>= 0' if allow_zero else '> 0'}, got {text!r}")
        return value
    return parse


def _fraction_list(text: str) -> tuple[float, ...]:
    """Comma-separated reuse rates in [0, 1)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0,0.25,0.5, got {text!r}") from None
    if not all(0 <= v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"reuse rates must be in [0, 1), got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="supernode estimate",
                                     description="Estimate decode/prefill time from the hardware model.")
    sub = parser.add_subparsers(dest="phase", required=True,
                                metavar="{decode,prefill,reuse,load}")
    dec = sub.add_parser("decode", help="one decode iteration of an instance")
    _common(dec)
    dec.add_argument("--dp", type=_positive(int), help="attention DP degree (default: all dies / tp)")
    dec.add_argument("--batch-per-device", type=_positive(float), required=True,
                     help="running requests per device")
    dec.add_argument("--kv-len", type=_positive(float, allow_zero=True), required=True,
                     help="mean context length of the running requests (tokens)")
    dec.add_argument("--mtp", type=_positive(int, allow_zero=True), default=0,
                     help="speculative MTP tokens per step (default 0)")
    dec.add_argument("--mtp-acceptance", type=float, default=0.7,
                     help="probability a speculative token is accepted, given the previous "
                          "one was (default 0.7)")
    pre = sub.add_parser("prefill", help="one packed prefill batch of an instance")
    _prefill_args(pre)
    pre.add_argument("--cached-prefix-len", type=_positive(int, allow_zero=True), default=0,
                     help="tokens of each prompt served from the context cache (default 0)")
    pre.add_argument("--plane", choices=tuple(PLANES), default="ub",
                     help="how the cached prefixes are fetched from EMS (default ub)")
    exp = sub.add_parser("reuse", help="an EMS context-caching experiment over reuse rates")
    _prefill_args(exp)
    exp.add_argument("--reuse", type=_fraction_list, default=(0.0, 0.125, 0.25, 0.5, 0.75, 0.9),
                     help="comma-separated prefix reuse rates (default 0,0.125,0.25,0.5,0.75,0.9)")
    estimate_load.add_parser(sub, _positive)
    return parser


def _prefill_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--prompt-len", type=_positive(int), required=True, help="tokens per prompt")
    p.add_argument("--tokens-per-device", type=_positive(int), required=True,
                   help="prompt tokens packed per device in one batch")
    p.add_argument("--mtp", type=_positive(int, allow_zero=True), default=None,
                   help="MTP modules run over the prompt (default: the model's MTP layers)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hardware", default="ascend-910c", help="hardware profile (default ascend-910c)")
    p.add_argument("--model", default="deepseek-r1", help="model profile (default deepseek-r1)")
    p.add_argument("--devices", type=_positive(int), required=True, help="devices in the instance")
    p.add_argument("--ep", type=_positive(int), help="expert-parallel degree (default: all dies)")
    p.add_argument("--tp", type=_positive(int), help="attention TP degree (default 1)")
    p.add_argument("--quant", default="int8", choices=("int8", "fp8", "bf16", "fp16"),
                   help="weight/GEMM datatype (default int8)")
    p.add_argument("--kv-dtype", default="bf16", choices=("bf16", "fp16", "fp8", "int8"),
                   help="KV-cache datatype (default bf16)")
    p.add_argument("--no-microbatch", action="store_true", help="disable two-microbatch overlap")
    p.add_argument("--eplb", type=eplb_arg, default="default",
                   help="perfect | default | imbalance factor >= 1 (default: default)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.phase == "load":
        return estimate_load.run(args, parser)
    run = {"decode": _decode, "prefill": _prefill, "reuse": _reuse}[args.phase]
    try:
        result = run(args)
    except ValueError as err:
        parser.error(str(err))
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.phase == "reuse":
        _print_reuse(result)
    else:
        _print_table(args.phase, result)
    return 0


def _deployment(args, mtp: int, acceptance: float) -> Deployment:
    return Deployment.build(args.hardware, args.model, args.devices, dp=getattr(args, "dp", None),
                            tp=args.tp, ep=args.ep, quant=args.quant, kv_dtype=args.kv_dtype,
                            microbatch=not args.no_microbatch, mtp_tokens=mtp,
                            mtp_acceptance=acceptance, eplb=args.eplb)


def _prefill_deployment(args) -> Deployment:
    from supernode.models import load_model

    mtp = args.mtp if args.mtp is not None else min(1, load_model(args.model).num_mtp_layers)
    return _deployment(args, mtp, 0.7)


def _decode(args) -> dict:
    d = _deployment(args, args.mtp, args.mtp_acceptance)
    e = estimate_decode(d, args.batch_per_device, args.kv_len)
    mtp_s = e.timing.breakdown.get("mtp", 0.0)
    return {"step_s": e.step_s, "tpot_s": e.tpot_s,
            "tokens_per_s_per_device": e.tokens_per_s_per_device,
            "expected_tokens_per_step": d.tokens_per_request_step,
            "mtp_s_per_step": mtp_s, "mtp_s_per_token": mtp_s / d.tokens_per_request_step,
            **_timing_fields(e.timing), "kv_capacity_tokens": kv_capacity_tokens(d),
            "deployment": _describe(d)}


def _prefill(args) -> dict:
    d = _prefill_deployment(args)
    e = estimate_prefill(d, args.prompt_len, args.tokens_per_device, args.cached_prefix_len,
                         PLANES[args.plane])
    return {"batch_s": e.batch_s, "fetch_s": e.timing.breakdown.get("cache_fetch", 0.0),
            "plane": args.plane, "tokens_per_s_per_device": e.tokens_per_s_per_device,
            "computed_tokens_per_s_per_device": e.computed_tokens_per_s_per_device,
            "regime": regime(e.timing), **_timing_fields(e.timing), "deployment": _describe(d)}


def _reuse(args) -> dict:
    d = _prefill_deployment(args)
    points = reuse_experiment(d, args.prompt_len, args.tokens_per_device, args.reuse,
                              ("none", *PLANES.values()))
    return {"prompt_len": args.prompt_len, "tokens_per_device": args.tokens_per_device,
            "points": [vars(p) for p in points], "deployment": _describe(d)}


def regime(t: Timing) -> str:
    """The bound that accounts for most of the busy time (``compute``, ``memory``, ...)."""
    by_bound: dict[str, float] = {}
    for part, seconds in t.breakdown.items():
        by_bound[t.bounds[part]] = by_bound.get(t.bounds[part], 0.0) + seconds
    return max(by_bound, key=by_bound.__getitem__) if by_bound else "fixed"


def _timing_fields(t: Timing) -> dict:
    return {"breakdown": dict(t.breakdown), "bounds": dict(t.bounds), "overlap_s": t.overlap_s,
            "compute_util": t.compute_util, "hbm_util": t.hbm_util, "notes": list(t.notes)}


def _describe(d: Deployment) -> dict:
    return {"hardware": d.hardware.name, "model": d.model.name, "num_devices": d.num_devices,
            "num_dies": d.num_dies, "dp": d.dp, "tp": d.tp, "ep": d.ep, "quant": d.quant,
            "kv_dtype": d.kv_dtype, "microbatch": d.microbatch, "mtp_tokens": d.mtp_tokens,
            "mtp_acceptance": d.mtp_acceptance, "eplb": d.eplb}


#: Headline lines of the table: (label with its unit, JSON key, scale to that unit).
HEADLINES = {
    "decode": (("step (ms)", "step_s", 1e3), ("TPOT (ms)", "tpot_s", 1e3),
               ("tokens/s per device", "tokens_per_s_per_device", 1),
               ("expected tokens per step", "expected_tokens_per_step", 1),
               ("MTP drafts (ms per step)", "mtp_s_per_step", 1e3),
               ("MTP drafts (ms per emitted token)", "mtp_s_per_token", 1e3)),
    "prefill": (("batch (ms)", "batch_s", 1e3), ("cache fetch (ms)", "fetch_s", 1e3),
                ("prompt tokens/s per device", "tokens_per_s_per_device", 1),
                ("computed tokens/s per device", "computed_tokens_per_s_per_device", 1)),
}


def _print_table(phase: str, result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    dep = result["deployment"]
    table = Table(title=f"{phase}: {dep['model']} on {dep['num_devices']} x {dep['hardware']} "
                        f"(DP{dep['dp']} TP{dep['tp']} EP{dep['ep']}, {dep['quant']})")
    for col, justify in (("part", "left"), ("busy (ms)", "right"), ("share", "right"),
                         ("bound", "left")):
        table.add_column(col, justify=justify)
    busy = sum(result["breakdown"].values()) or 1.0
    for part, seconds in sorted(result["breakdown"].items(), key=lambda kv: -kv[1]):
        table.add_row(part, f"{seconds * 1e3:.3f}", f"{seconds / busy:.1%}", result["bounds"][part])
    table.add_row("(hidden by overlap)", f"-{result['overlap_s'] * 1e3:.3f}", "", "")
    console = Console()
    console.print(table)
    for label, key, scale in HEADLINES[phase]:
        if phase == "decode" and key.startswith("mtp") and not dep["mtp_tokens"]:
            continue
        console.print(f"{label}: {result[key] * scale:,.3f}")
    if phase == "prefill":
        console.print(f"cache plane: {result['plane']}   regime: {result['regime']}-bound")
    for note in result["notes"]:
        console.print(f"note: {note}")


def _print_reuse(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    dep = result["deployment"]
    table = Table(title=f"EMS reuse: {dep['model']} on {dep['num_devices']} x {dep['hardware']}, "
                        f"{result['prompt_len']}-token prompts, "
                        f"{result['tokens_per_device']} tokens/device per batch")
    for col in ("reuse", "cache", "cached tokens", "fetch (ms)", "batch (ms)", "TTFT (ms)",
                "prompt tokens/s per device"):
        table.add_column(col, justify="left" if col == "cache" else "right")
    for p in result["points"]:
        table.add_row(f"{p['reuse']:.1%}", p["cache"], str(p["cached_prefix_len"]),
                      f"{p['fetch_s'] * 1e3:.1f}", f"{p['batch_s'] * 1e3:.1f}",
                      f"{p['ttft_s'] * 1e3:.1f}", f"{p['tokens_per_s_per_device']:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    raise SystemExit(main())
