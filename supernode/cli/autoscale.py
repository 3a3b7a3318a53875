"""`supernode autoscale`: scale a running `supernode up`'s pools with the Kubernetes HPA's rule.

Every `--interval` it reads the scheduler's /metrics (with the admin key when one is
configured) and the runtime's instance counts (the control API), computes each pool's desired
size from its targets with the rule in supernode/autoscale/hpa.py (target tracking,
`desired = ceil(current x metric / target)`, the HPA's tolerance, stabilization windows and
rate policies, between `--min-*` and `--max-*`), applies changes through the control API (new
instances register and load their model, removed ones drain) and prints every decision with
its inputs, one line each (`--json`: one JSON object each).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
from collections.abc import Mapping

import httpx

from supernode.autoscale.hpa import (
    METRICS,
    Behavior,
    Decision,
    Observation,
    PoolAutoscaler,
    RatePolicy,
    Target,
)
from supernode.autoscale.loop import Autoscaler
from supernode.autoscale.signals import SchedulerSignals
from supernode.cli.control import MAX_INSTANCES, POOLS, ControlClient, ControlError

DECODE_ONLY = {"kv"}


def target(text: str) -> Target:
    """argparse type for POOL:METRIC=VALUE."""
    spec, sep, value = text.partition("=")
    pool, colon, metric = spec.partition(":")
    if not (sep and colon) or pool not in POOLS or metric not in METRICS:
        raise argparse.ArgumentTypeError(
            f"expected POOL:METRIC=VALUE with POOL prefill|decode and METRIC "
            f"{'|'.join(METRICS)}, got {text!r}")
    if metric in DECODE_ONLY and pool != "decode":
        raise argparse.ArgumentTypeError(f"{text}: {metric} is a decode metric")
    try:
        return Target(pool, metric, float(value))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text}: {e}") from None


def rate(text: str) -> RatePolicy:
    """argparse type for N/SECONDS."""
    num, sep, period = text.partition("/")
    try:
        if not sep:
            raise ValueError(text)
        return RatePolicy(int(num), float(period))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N/SECONDS (e.g. 2/30), got {text!r}"
                                         ) from None


def bound(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= n <= MAX_INSTANCES:
        raise argparse.ArgumentTypeError(f"{n} is outside 1..{MAX_INSTANCES}")
    return n


def _number(text: str, low: float, open_low: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < low or (open_low and value == low) or value != value:
        raise argparse.ArgumentTypeError(f"must be {'>' if open_low else '>='} {low:g}, "
                                         f"got {text}")
    return value


def positive(text: str) -> float:
    return _number(text, 0.0, open_low=True)


def non_negative(text: str) -> float:
    return _number(text, 0.0, open_low=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="supernode autoscale", description=__doc__.split("\n")[0])
    p.add_argument("--url", default=os.environ.get("SUPERNODE_URL", "http://127.0.0.1:8000"),
                   help="the endpoint of the `supernode up` (default $SUPERNODE_URL or "
                        "http://127.0.0.1:8000)")
    p.add_argument("--admin-key", default=os.environ.get("SUPERNODE_ADMIN_KEY"),
                   help="the scheduler's admin key, when it has one (default "
                        "$SUPERNODE_ADMIN_KEY)")
    p.add_argument("--target", action="append", type=target, metavar="POOL:METRIC=VALUE",
                   help="keep a metric at a value; repeatable, the largest proposal of a pool "
                        "wins. Metrics: " + "; ".join(f"{k}: {v}" for k, v in METRICS.items())
                        + ". Default decode:waiting=4 (deploy/k8s/hpa.yaml)")
    for pool in POOLS:
        p.add_argument(f"--min-{pool}", type=bound, default=1, metavar="N",
                       help=f"fewest {pool} instances (default 1)")
        p.add_argument(f"--max-{pool}", type=bound, default=4, metavar="N",
                       help=f"most {pool} instances (default 4)")
    p.add_argument("--interval", type=positive, default=15.0,
                   help="seconds between evaluations (default 15, the HPA's sync period)")
    p.add_argument("--tolerance", type=float, default=0.1,
                   help="no change while |1 - metric/target| is within this (default 0.1)")
    p.add_argument("--scale-up-window", type=non_negative, default=0.0, metavar="S",
                   help="scale-up stabilization window, seconds (default 0)")
    p.add_argument("--scale-down-window", type=non_negative, default=300.0, metavar="S",
                   help="scale-down stabilization window, seconds (default 300)")
    p.add_argument("--scale-up-policy", type=rate, default=RatePolicy(2, 30.0), metavar="N/S",
                   help="add at most N instances per S seconds (default 2/30)")
    p.add_argument("--scale-down-policy", type=rate, default=RatePolicy(1, 120.0),
                   metavar="N/S", help="remove at most N instances per S seconds (default 1/120)")
    p.add_argument("--duration", type=positive, default=None,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="one JSON object per decision")
    return p


def pool_autoscalers(args: argparse.Namespace, parser: argparse.ArgumentParser
                     ) -> list[PoolAutoscaler]:
    targets = args.target or [Target("decode", "waiting", 4.0)]
    pools = []
    for pool in POOLS:
        mine = [t for t in targets if t.pool == pool]
        if not mine:
            continue
        try:
            behavior = Behavior(getattr(args, f"min_{pool}"), getattr(args, f"max_{pool}"),
                                args.tolerance, args.scale_up_window, args.scale_down_window,
                                args.scale_up_policy, args.scale_down_policy)
        except ValueError as e:
            parser.error(f"--min-{pool}/--max-{pool}/--tolerance: {e}")
        pools.append(PoolAutoscaler(pool, mine, behavior))
    return pools


class LiveSource:
    """Observations from the scheduler's /metrics and the runtime's instance counts."""

    def __init__(self, url: str, admin_key: str | None, control: ControlClient) -> None:
        headers = {"authorization": f"Bearer {admin_key}"} if admin_key else {}
        self._http = httpx.Client(headers=headers, timeout=10.0)
        self._url = f"{url.rstrip('/')}/metrics"
        self._control = control
        self._signals = SchedulerSignals()

    def observe(self) -> Mapping[str, Observation]:
        try:
            response = self._http.get(self._url)
            pools = self._control.instances()["pools"]
        except (httpx.HTTPError, ControlError) as e:
            raise OSError(str(e)) from None
        if response.status_code == 401:
            raise OSError(f"{self._url} needs the admin key (--admin-key or "
                          "SUPERNODE_ADMIN_KEY)")
        if response.is_error:
            raise OSError(f"{self._url}: HTTP {response.status_code}")
        return self._signals.observe(response.text, pools)


class ControlScaler:
    def __init__(self, control: ControlClient) -> None:
        self._control = control

    def scale(self, pool: str, num_instances: int) -> None:
        try:
            self._control.scale(pool, num_instances)
        except ControlError as e:
            raise OSError(str(e)) from None


def describe(decision: Decision, outcome: str) -> str:
    """One human line with every input of the decision."""
    at = datetime.datetime.now().strftime("%H:%M:%S")
    metrics = "; ".join(
        f"{p.metric} unavailable" if p.value is None else
        f"{p.metric} {p.value:.3g} (target {p.target:g}, ratio {p.ratio:.2f} -> {p.num_instances})"
        for p in decision.proposals)
    return (f"{at} {decision.pool} {decision.current} -> {decision.desired} ({decision.reason}, "
            f"{outcome}): {metrics}; ready {decision.ready}/{decision.current}; recommended "
            f"{decision.recommended}, stabilized {decision.stabilized}")


def as_json(decision: Decision, outcome: str) -> str:
    return json.dumps({
        "time": datetime.datetime.now().isoformat(timespec="seconds"), "at_s": decision.at_s,
        "pool": decision.pool, "current": decision.current, "ready": decision.ready,
        "desired": decision.desired, "recommended": decision.recommended,
        "stabilized": decision.stabilized, "reason": decision.reason, "outcome": outcome,
        "metrics": [p.__dict__ for p in decision.proposals]})


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM end the loop. Installed explicitly: a process started in the
    background by a non-interactive shell inherits SIGINT ignored, and Python then never
    raises KeyboardInterrupt."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    pools = pool_autoscalers(args, parser)
    try:
        control, state = ControlClient.for_endpoint(args.url, args.admin_key)
    except ControlError as e:
        print(f"supernode autoscale: {e}", file=sys.stderr)
        return 1
    fmt = as_json if args.json else describe

    def on_error(message: str) -> None:
        print(f"supernode autoscale: {message}", file=sys.stderr, flush=True)

    autoscaler = Autoscaler(pools, LiveSource(args.url, args.admin_key, control),
                            ControlScaler(control),
                            lambda d, outcome: print(fmt(d, outcome), flush=True), on_error)
    print(f"supernode autoscale: {state.runtime} runtime at {args.url}, every "
          f"{args.interval:g}s: " + "; ".join(
              f"{p.pool} {p.behavior.min_instances}..{p.behavior.max_instances} on "
              + ", ".join(f"{t.metric}={t.value:g}" for t in p.targets) for p in pools),
          file=sys.stderr, flush=True)
    stop_on_signals()
    try:
        autoscaler.run(args.interval, args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        control.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
