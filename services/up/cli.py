"""`supernode up`: every role of a deployment on this machine, until Ctrl-C or SIGTERM.

`--runtime process` (the default) runs each instance as a local process on loopback;
`--runtime docker` runs each as a container of the project's image on a private Docker network
(services/runtime). Either way `up` checks first what would fail later (exit 1 naming the
cause), starts the deployment, waits until its own scheduler reports every worker registered,
prints the endpoint, and then supervises (restarts what exits unasked, with back-off) and
serves its control API (services/up/control.py) for `supernode scale`, `autoscale` and
`fault`, until SIGINT/SIGTERM: then it stops everything (workers drain) and removes what it
created. A signal during start-up aborts it the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from services.common.credentials import (
    CredentialsError,
    add_cluster_token_flag,
    add_http_auth_flags,
    credentials_from_args,
    is_loopback,
)
from services.common.ports import tcp_port
from services.common.worker_main import parse_overrides
from services.runtime import RUNTIMES, make_runtime
from services.runtime.base import Runtime, RuntimeOptions, RuntimeUnavailable
from services.up.banner import up_banner
from services.up.control import ControlServer
from services.up.controller import UpController
from services.up.lag_watch import LagWatch
from supernode.cli.control import ControlError, UpState, state_path, write_state
from supernode.config import ClusterConfig, load_config
from supernode.deployment import check_deployment, check_memory, overcommit_message


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="supernode up", description=__doc__.split("\n")[0])
    p.add_argument("--runtime", choices=tuple(RUNTIMES), default="process",
                   help="process: local processes (default); docker: one container per "
                        "instance, on a private network, with Redis behind EMS")
    p.add_argument("--config", help="deployment YAML (default: the embedded default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, dotted (e.g. decode.num_devices=32)")
    p.add_argument("--model", default=None,
                   help="model profile (deepseek-r1, qwen3-235b-a22b, llama-3.1-70b)")
    p.add_argument("--hardware", default=None, help="hardware profile (ascend-910c, h100, h800)")
    p.add_argument("--tokenizer", default=None, help="a local Hugging Face tokenizer.json")
    p.add_argument("--host", default=None,
                   help="bind address (default 127.0.0.1; docker: where the endpoint is "
                        "published)")
    p.add_argument("--port", type=tcp_port(1), default=None,
                   help="OpenAI HTTP port (default 8000)")
    p.add_argument("--num-prefill", type=int, default=None, help="prefill instances")
    p.add_argument("--num-decode", type=int, default=None, help="decode instances")
    p.add_argument("--speedup", type=float, default=None,
                   help="model seconds per wall second (0.1 = ten times slower)")
    p.add_argument("--routing-policy", default=None, help="least-loaded | round-robin | ...")
    p.add_argument("--redis-url", default=None,
                   help="back EMS with Redis at this URL (process runtime; docker runs its own)")
    p.add_argument("--no-cache", action="store_true", help="run without the EMS prefix cache")
    p.add_argument("--model-load", default=None, choices=("obs", "dram", "ems", "skip"),
                   help="where workers load their weights from at start (default skip: ready "
                        "at once); see docs/model-cache.md")
    p.add_argument("--allow-overcommit", action="store_true",
                   help="run instances whose weights and minimum KV do not fit in HBM")
    p.add_argument("--image", default="",
                   help="docker: the supernode image (default supernode:<version>; built from "
                        "deploy/Dockerfile when missing)")
    p.add_argument("--build", action="store_true",
                   help="docker: rebuild the image from this source tree first (cached layers)")
    p.add_argument("--log-dir", default=None, help="where each instance's log is written")
    p.add_argument("--ready-timeout", type=float, default=60.0,
                   help="seconds to wait for every worker to register")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--no-restart", action="store_true",
                   help="leave an instance that exits down (default: restart it with back-off)")
    add_http_auth_flags(p)
    add_cluster_token_flag(p)
    return p


def resolve_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ClusterConfig:
    overrides = parse_overrides(args.set, parser)
    flag_map = {"model": "model", "hardware": "hardware", "tokenizer": "tokenizer_path",
                "host": "ports.host", "port": "ports.http", "num_prefill": "num_prefill",
                "num_decode": "num_decode", "speedup": "speedup",
                "routing_policy": "routing_policy", "redis_url": "cache.redis_url",
                "model_load": "model_load.source"}
    for flag, key in flag_map.items():
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    if args.redis_url:
        overrides["cache.backend"] = "redis"
    if args.no_cache:
        overrides["cache.enabled"] = False
    if args.allow_overcommit:
        overrides["allow_overcommit"] = True
    try:
        config = load_config(args.config, overrides)
        check_deployment(config)
        problems = check_memory(config)
    except (ValueError, TypeError, OSError, KeyError) as e:
        parser.error(str(e))
    if problems and not config.allow_overcommit:
        parser.exit(2, f"supernode up: {overcommit_message(problems)}\n")
    if getattr(args, "runtime", "process") == "docker" and args.redis_url:
        parser.error("--redis-url: the docker runtime runs its own Redis container behind EMS")
    return config


def _say(message: str) -> None:
    print(f"supernode up: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = resolve_config(args, parser)
    try:
        credentials = credentials_from_args(args, os.environ)
    except CredentialsError as e:
        parser.error(str(e))
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="supernode-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    options = RuntimeOptions(config, log_dir, args.log_level, credentials, args.image,
                             args.build, _say)
    try:
        runtime = make_runtime(args.runtime, options)
    except RuntimeUnavailable as e:
        _say(str(e))
        return 1
    if problems := runtime.preflight():
        for problem in problems:
            _say(problem)
        return 1
    if not is_loopback(config.ports.host) and not credentials.api_keys:
        _say(f"warning: {runtime.endpoint}/v1 has no API key; anyone who reaches it can use it "
             "(set --api-key or VLLM_API_KEY)")
    return run(runtime, config, args, log_dir, credentials.admin_key)


def expected_pool_size(endpoint: str, admin_key: str | None) -> Callable[[str, int], None]:
    """Tell the scheduler a pool's new size (PUT /admin/pools/{pool}), so /health judges the
    pool against it; a failure is reported, and /health keeps the size it had."""
    headers = {"authorization": f"Bearer {admin_key}"} if admin_key else {}

    def tell(pool: str, num_instances: int) -> None:
        try:
            httpx.put(f"{endpoint}/admin/pools/{pool}", json={"instances": num_instances},
                      headers=headers, timeout=5.0).raise_for_status()
        except httpx.HTTPError as e:
            _say(f"could not tell the scheduler that {pool} now has {num_instances} "
                 f"instances ({e}); /health still expects the previous size")
    return tell


def run(runtime: Runtime, config: ClusterConfig, args: argparse.Namespace, log_dir: Path,
        admin_key: str | None) -> int:
    """Start, serve until a signal, stop; 1 when start-up fails, else 0."""
    stop, started = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        first = not stop.is_set()
        stop.set()
        if first and not started.is_set():
            raise KeyboardInterrupt  # abort start-up; `finally` removes what was created

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    controller = UpController(runtime, not args.no_restart, _say, CollectorRegistry(),
                              expected_pool_size(runtime.endpoint, admin_key))
    token = secrets.token_urlsafe(32)
    server = ControlServer(controller, (token, admin_key or ""))
    state_file = state_path(config.ports.http)
    drain = False
    try:
        try:
            runtime.launch()
            runtime.wait_ready(args.ready_timeout)
            server.start()
            write_state(UpState(os.getpid(), runtime.name, runtime.endpoint, server.url, token,
                                str(log_dir)), config.ports.http)
        except (RuntimeError, ControlError, OSError) as e:
            _say(str(e))
            return 1
        except KeyboardInterrupt:
            _say("interrupted during start-up")
            return 1
        started.set()
        drain = True
        for line in up_banner(config, runtime, log_dir, server.url, state_file):
            print(line, flush=True)
        _serve(controller, LagWatch(runtime.endpoint, config.speedup, _say), stop)
        print("supernode up: stopping", flush=True)
        return 0
    finally:
        started.set()  # a second signal while stopping must not interrupt the cleanup
        _remove_state(state_file)
        server.stop()
        runtime.shutdown(drain)


def _serve(controller: UpController, lag_watch: LagWatch, stop: threading.Event) -> None:
    """Supervise, end due faults and watch the lag until `stop` is set (the control API
    serves meanwhile)."""
    while not stop.is_set():
        try:
            controller.tick(time.monotonic())
        except Exception as e:  # supervision goes on; the user sees why a tick failed
            _say(f"supervision: {type(e).__name__}: {e}")
        lag_watch.tick(time.monotonic())
        stop.wait(0.2)


def _remove_state(path: Path) -> None:
    """Remove the state file if this process wrote it."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
