"""`supernode fault ...`: inject, list and clear faults on a running supernode (docs/faults.md).

A client of the scheduler's admin API (`/admin/faults`); it sends the admin key as a bearer
token (`--admin-key`, or the SUPERNODE_ADMIN_KEY environment variable). `kill`, `stall` and
`disconnect` may instead act on the instance through the runtime of the `supernode up` serving
`--url` (its control API, supernode/cli/control.py): kill the process or container, freeze it
(SIGSTOP / `docker pause`), cut it off the network (docker). `--via auto`, the default, does
that under the docker runtime (what operators' chaos tools do to containers) and uses the
scheduler's in-process faults otherwise; `list` and `clear` cover both kinds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import httpx

from supernode.cli.control import ControlClient, ControlError

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
    cut = command("disconnect", "cut an instance off the network for a while (docker runtime)")
    cut.add_argument("worker", help="instance name (its worker id), e.g. decode-0")
    cut.add_argument("--duration", type=_number(float, 0.0, 3600, open_low=True),
                     required=True, help="seconds")
    for sub_parser in (stall, kill, cut):
        sub_parser.add_argument(
            "--via", choices=("auto", "runtime", "scheduler"), default="auto",
            help="runtime: act on the process or container through `supernode up`; "
                 "scheduler: the worker applies the fault itself (not for disconnect); auto "
                 "(default): runtime under the docker runtime, else scheduler")
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
    if args.command == "disconnect":
        raise ValueError("disconnect is a runtime fault: it has no scheduler body")
    return {"kind": "ems_unreachable", "duration_s": args.duration, "mode": args.mode}


RUNTIME_KINDS = {"kill": "kill", "stall": "pause", "disconnect": "disconnect"}


def runtime_control(args: argparse.Namespace) -> ControlClient | None:
    """The control client of the `up` serving --url when this command goes through the
    runtime; None when it goes to the scheduler. ControlError when the runtime is required
    and cannot be reached."""
    via = getattr(args, "via", "auto")
    if args.command in ("list", "clear"):
        via = "auto-any"
    elif args.command == "disconnect" and via == "scheduler":
        raise ControlError("--via scheduler: a worker cannot cut itself off the network; "
                           "disconnect needs the docker runtime")
    if via == "scheduler":
        return None
    try:
        client, state = ControlClient.for_endpoint(args.url, args.admin_key)
    except ControlError:
        if via == "runtime" or args.command == "disconnect":
            raise
        return None
    if via == "auto" and state.runtime != "docker" and args.command != "disconnect":
        client.close()
        return None
    return client


def via_runtime(args: argparse.Namespace, control: ControlClient) -> Any:
    """Inject, list or clear through the runtime (list and clear: besides the scheduler's;
    None when a clear names a scheduler fault)."""
    if args.command in RUNTIME_KINDS:
        body = {"duration_s": getattr(args, "duration", 0.0)}
        return control.call("POST", f"/instances/{args.worker}/{RUNTIME_KINDS[args.command]}",
                            body)
    if args.command == "list":
        return control.call("GET", "/faults")["faults"]
    if not args.fault_id:
        return control.call("DELETE", "/faults")["cleared"]
    return control.call("DELETE", f"/faults/{args.fault_id}") if is_runtime_id(args) else None


def is_runtime_id(args: argparse.Namespace) -> bool:
    """Runtime faults are numbered r1, r2, ...; the scheduler's f1, f2, ..."""
    return args.command == "clear" and bool(args.fault_id) and args.fault_id.startswith("r")


def via_scheduler(args: argparse.Namespace) -> tuple[int, Any]:
    """(exit status, JSON answer) of the scheduler's admin API."""
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
        return 1, None
    if response.is_error:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        print(f"supernode fault: HTTP {response.status_code}: {message}", file=sys.stderr)
        return 1, None
    return 0, response.json()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        control = runtime_control(args)
        runtime_answer = via_runtime(args, control) if control is not None else None
    except ControlError as e:
        print(f"supernode fault: {e}", file=sys.stderr)
        return 1
    if control is not None and (args.command in RUNTIME_KINDS or is_runtime_id(args)):
        print(json.dumps(runtime_answer, indent=2))
        return 0
    status, answer = via_scheduler(args)
    if status == 0 and runtime_answer is not None and isinstance(answer, dict):
        answer["runtime_faults" if args.command == "list" else "runtime_cleared"] = runtime_answer
    if status == 0:
        print(json.dumps(answer, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
