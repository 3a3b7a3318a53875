"""`supernode fault ...`: inject, list and clear faults on a running supernode (docs/faults.md).

A client of the scheduler's admin API (`/admin/faults`); it sends the admin key as a bearer
token (`--admin-key`, or the SUPERNODE_ADMIN_KEY environment variable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import httpx

PLANES = ("ub", "rdma", "vpc", "ems_ub", "ems_vpc")


def _number(kind: type, low: float, high: float | None = None, *, open_low: bool = False
            ) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        too_low = value <= low if open_low else value < low
        if too_low or (high is not None and value > high):
            bound = f"> {low:g}" if open_low else f">= {low:g}"
            raise argparse.ArgumentTypeError(
                f"{text} is out of range (must be {bound}" +
                (f" and <= {high:g})" if high is not None else ")"))
        return value

    return parse


def _connection_flags(parser: argparse.ArgumentParser, with_defaults: bool) -> None:
    """--url and --admin-key, accepted before or after the command (after: no default, so
    they do not overwrite a value given before)."""
    url = os.environ.get("SUPERNODE_URL", "http://127.0.0.1:8000")
    parser.add_argument("--url", default=url if with_defaults else argparse.SUPPRESS,
                        help="the scheduler's HTTP endpoint (default $SUPERNODE_URL or "
                             "http://127.0.0.1:8000)")
    parser.add_argument("--admin-key", help="admin key (default $SUPERNODE_ADMIN_KEY)",
                        default=os.environ.get("SUPERNODE_ADMIN_KEY") if with_defaults
                        else argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="supernode fault", description=__doc__.split("\n")[0])
    _connection_flags(p, with_defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _connection_flags(common, with_defaults=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, parents=[common])

    command("list", "show the active faults")
    clear = command("clear", "clear one fault by id, or all of them")
    clear.add_argument("fault_id", nargs="?", help="fault id (default: every fault)")
    duration = _number(float, 0.0, 24 * 3600)
    fail = command("fail-requests", "fail the next N generation requests")
    fail.add_argument("--status", type=_number(int, 400, 599), default=503,
                      help="HTTP status to answer (default 503)")
    fail.add_argument("--count", type=_number(int, 1), default=1, help="how many (default 1)")
    fail.add_argument("--duration", type=duration, default=0.0,
                      help="seconds before it expires unused (default: never)")
    link = command("degrade-link", "make a link plane N times slower")
    link.add_argument("--plane", choices=PLANES, required=True,
                      help="ub: MoE all-to-all and EMS over UB; rdma: KV to decode; vpc: EMS "
                           "over VPC; ems_ub, ems_vpc: only the EMS reads")
    link.add_argument("--factor", type=_number(float, 1.0, 1e6, open_low=True), required=True,
                      help="times slower (> 1): latency x factor, bandwidth / factor")
    link.add_argument("--target", default="",
                      help="prefill, decode or a worker id (default: every worker)")
    link.add_argument("--duration", type=duration, default=0.0,
                      help="seconds (default: until cleared)")
    stall = command("stall", "stop a worker responding for a while")
    stall.add_argument("worker", help="worker id, e.g. decode-0")
    stall.add_argument("--duration", type=_number(float, 0.0, 3600, open_low=True),
                       required=True, help="seconds")
    kill = command("kill", "kill a worker (SIGKILL)")
    kill.add_argument("worker", help="worker id, e.g. prefill-0")
    ems = command("ems-unreachable", "make EMS unreachable for a while")
    ems.add_argument("--duration", type=_number(float, 0.0, 24 * 3600, open_low=True),
                     required=True, help="seconds")
    ems.add_argument("--mode", choices=("refuse", "blackhole"), default="refuse",
                     help="refuse calls at once, or never answer them (default refuse)")
    return p


def fault_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /admin/faults body for an inject command."""
    if args.command == "fail-requests":
        return {"kind": "fail_requests", "status": args.status, "count": args.count,
                "duration_s": args.duration}
    if args.command == "degrade-link":
        return {"kind": "degrade_link", "plane": args.plane, "factor": args.factor,
                "target": args.target, "duration_s": args.duration}
    if args.command == "stall":
        return {"kind": "stall_worker", "target": args.worker, "duration_s": args.duration}
    if args.command == "kill":
        return {"kind": "kill_worker", "target": args.worker}
    return {"kind": "ems_unreachable", "duration_s": args.duration, "mode": args.mode}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    headers = {"authorization": f"Bearer {args.admin_key}"} if args.admin_key else {}
    url = f"{args.url.rstrip('/')}/admin/faults"
    try:
        with httpx.Client(headers=headers, timeout=10.0) as client:
            if args.command == "list":
                response = client.get(url)
            elif args.command == "clear":
                response = client.delete(f"{url}/{args.fault_id}" if args.fault_id else url)
            else:
                response = client.post(url, json=fault_body(args))
    except httpx.HTTPError as e:
        print(f"supernode fault: cannot reach {args.url}: {e}", file=sys.stderr)
        return 1
    if response.is_error:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        print(f"supernode fault: HTTP {response.status_code}: {message}", file=sys.stderr)
        return 1
    print(json.dumps(response.json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
