"""`supernode up`: every role as its own local process on loopback, until Ctrl-C or SIGTERM.

Checks first what would fail later (ports taken, Redis unreachable: exit 1 naming the cause),
then starts the scheduler, EMS, the prefill pool and the decode pool (each `python -m
services.X` with the same resolved config file and ports fixed for its lifetime), waits until
its own scheduler (told apart from any other server by an instance id) reports every worker
registered (ready, or loading its model), and prints the endpoint and each process's metrics
address. While up, a child that exits is restarted with back-off (services.supervisor); a
restarted worker loads its model again when loads are modelled. On SIGINT/SIGTERM it stops
the children by their process ids (SIGTERM: workers drain; SIGKILL after the drain timeout
plus a grace period). The children share one cluster token (the user's, or a fresh random
one), passed in their environment (restarts too), never in argv or the config file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from services.common.credentials import (
    Credentials,
    CredentialsError,
    add_cluster_token_flag,
    add_http_auth_flags,
    child_environment,
    credentials_from_args,
    is_loopback,
)
from services.common.ports import tcp_port
from services.common.worker_main import parse_overrides
from services.preflight import preflight
from services.supervisor import RestartPolicy, Supervisor
from supernode.config import ClusterConfig, load_config, to_dict
from supernode.deployment import (
    check_deployment,
    check_memory,
    instance_deployment,
    overcommit_message,
    served_models,
)
from supernode.lifecycle.models import initial_model
from supernode.perf.load import load_time, model_image
from supernode.policy.kv_affinity import uses_local_cache


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]
    metrics_url: str
    http: bool = False
    """Serves the HTTP endpoint: its environment carries the API and admin keys too."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="supernode up", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="deployment YAML (default: the embedded default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, dotted (e.g. decode.num_devices=32)")
    p.add_argument("--model", default=None,
                   help="model profile (deepseek-r1, qwen3-235b-a22b, llama-3.1-70b)")
    p.add_argument("--hardware", default=None, help="hardware profile (ascend-910c, h100, h800)")
    p.add_argument("--tokenizer", default=None, help="a local Hugging Face tokenizer.json")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=tcp_port(1), default=None,
                   help="OpenAI HTTP port (default 8000)")
    p.add_argument("--num-prefill", type=int, default=None, help="prefill instances")
    p.add_argument("--num-decode", type=int, default=None, help="decode instances")
    p.add_argument("--speedup", type=float, default=None,
                   help="model seconds per wall second (0.1 = ten times slower)")
    p.add_argument("--routing-policy", default=None, help="least-loaded | round-robin | ...")
    p.add_argument("--redis-url", default=None, help="back EMS with Redis at this URL")
    p.add_argument("--no-cache", action="store_true", help="run without the EMS prefix cache")
    p.add_argument("--model-load", default=None, choices=("obs", "dram", "ems", "skip"),
                   help="where workers load their weights from at start (default skip: ready "
                        "at once); see docs/model-cache.md")
    p.add_argument("--allow-overcommit", action="store_true",
                   help="run instances whose weights and minimum KV do not fit in HBM")
    p.add_argument("--log-dir", default=None, help="where each process writes its log")
    p.add_argument("--ready-timeout", type=float, default=60.0,
                   help="seconds to wait for every worker to register")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--no-restart", action="store_true",
                   help="leave a child that exits down (default: restart it with back-off)")
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
    return config


PORT_RANGE = (20_000, 32_000)
"""Where child ports are picked: below Linux's ephemeral range (32768-60999), so a port freed
here is not handed to some outgoing connection before the child binds it."""


def free_port(host: str) -> int:
    """A port that is free now in PORT_RANGE (the child process binds it moments later)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {PORT_RANGE} on {host}")


class Cluster:
    """The child processes of one `supernode up`."""

    def __init__(self, config: ClusterConfig, log_dir: Path, log_level: str,
                 credentials: Credentials | None = None) -> None:
        """`credentials` without a cluster token get a fresh random one."""
        credentials = credentials or Credentials()
        if not credentials.cluster_token:
            credentials = dataclasses.replace(credentials,
                                              cluster_token=secrets.token_urlsafe(32))
        self.credentials = credentials
        self.config = config
        self.log_dir = log_dir
        self.log_level = log_level
        self.children: list[Child] = []
        self.config_path = log_dir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        host = config.ports.host
        self._ports = {config.ports.http}
        self.scheduler_grpc = f"{host}:{config.ports.scheduler_grpc or self._port()}"
        self.ems_grpc = f"{host}:{config.ports.ems_grpc or self._port()}"
        self.endpoint = f"http://{host}:{config.ports.http}"
        self.instance_id = uuid.uuid4().hex

    def _port(self) -> int:
        """A free port not yet handed to another child of this cluster."""
        while (port := free_port(self.config.ports.host)) in self._ports:
            pass
        self._ports.add(port)
        return port

    def start(self) -> None:
        host = self.config.ports.host
        common = ["--config", str(self.config_path), "--host", host, "--log-level",
                  self.log_level]
        self._spawn("scheduler", "services.scheduler", [
            *common, "--http-port", str(self.config.ports.http),
            "--port", self.scheduler_grpc.rsplit(":", 1)[1], "--instance-id", self.instance_id],
            metrics_url=f"{self.endpoint}/metrics", http=True)
        if self.runs_ems:
            self._spawn("ems", "services.ems", [
                *common, "--scheduler", self.scheduler_grpc,
                "--port", self.ems_grpc.rsplit(":", 1)[1]])
        for i in range(self.config.num_prefill):
            self.add_worker("prefill", f"prefill-{i}")
        for i in range(self.config.num_decode):
            self.add_worker("decode", f"decode-{i}")

    def add_worker(self, role: str, worker_id: str) -> None:
        """Start one more `role` ("prefill" or "decode") worker with the cluster's config; it
        is supervised like the others once `supernode up` supervises. With several served
        models, the n-th worker of a role starts with the lifecycle's placement for index n."""
        args = ["--config", str(self.config_path), "--host", self.config.ports.host,
                "--log-level", self.log_level, "--scheduler", self.scheduler_grpc,
                "--worker-id", worker_id, "--port", str(self._port())]
        if len(served_models(self.config)) > 1:
            index = sum(c.argv[2] == f"services.{role}" for c in self.children)
            args += ["--served-model", initial_model(self.config, index).name]
        if self.runs_ems:
            args += ["--ems", self.ems_grpc]
        self._spawn(worker_id, f"services.{role}", args)

    @property
    def uses_ems(self) -> bool:
        """A shared EMS pool runs unless the cache is off or each prefill keeps its own."""
        return self.config.cache.enabled and not uses_local_cache(self.config.routing_policy)

    @property
    def runs_ems(self) -> bool:
        """EMS runs for the prefix cache, or to cache and pace model loads."""
        return self.uses_ems or self.config.model_load.enabled

    def _spawn(self, name: str, module: str, args: list[str], metrics_url: str = "",
               http: bool = False) -> None:
        """Start a child; workers and EMS get a /metrics port fixed for the child's lifetime
        (restarts keep it, so scrape targets stay put). `http`: the child serves the HTTP
        endpoint and gets the API and admin keys too."""
        if not metrics_url:
            port = self._port()
            args = [*args, "--metrics-port", str(port)]
            metrics_url = f"http://{self.config.ports.host}:{port}/metrics"
        argv = [sys.executable, "-m", module, *args]
        log_path = self.log_dir / f"{name}.log"
        child = Child(name, self._popen(argv, log_path, http), log_path, argv, metrics_url, http)
        self.children.append(child)

    def respawn(self, child: Child) -> None:
        """Start an exited child again: same command line, ports, log file and credentials."""
        with open(child.log_path, "ab") as log:
            log.write(f"---- supernode up: restarting {child.name} ----\n".encode())
        child.process = self._popen(child.argv, child.log_path, child.http)

    def _popen(self, argv: list[str], log_path: Path, http: bool) -> subprocess.Popen[bytes]:
        env = child_environment(self.credentials, os.environ, http)
        with open(log_path, "ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)

    def dead(self) -> list[Child]:
        return [c for c in self.children if c.process.poll() is not None]

    def wait_ready(self, timeout_s: float) -> None:
        """Block until our scheduler's /health reports every pool registered (ready, or loading
        its model); RuntimeError on a dead child. A server on the port that is not our
        scheduler never counts as ready."""
        want = {"prefill": self.config.num_prefill, "decode": self.config.num_decode,
                "ems": 1 if self.runs_ems else 0}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if dead := self.dead():
                raise RuntimeError(f"{dead[0].name} exited with {dead[0].process.returncode}; "
                                   f"log {dead[0].log_path}:\n{_tail(dead[0].log_path)}")
            try:
                health = httpx.get(f"{self.endpoint}/health", timeout=1.0).json()
                ours = health.get("instance_id") == self.instance_id
                workers, loading = health["workers"], health.get("loading", {})
                if ours and all(workers.get(k, 0) + loading.get(k, 0) >= n
                                for k, n in want.items()):
                    return
            except (httpx.HTTPError, ValueError, KeyError, AttributeError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"workers did not register within {timeout_s:.0f}s; logs in "
                           f"{self.log_dir}")

    def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM every child, then SIGKILL those still running after the workers' drain
        timeout plus `grace_s` (default 5 s)."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.drain_timeout_s + (
            5.0 if grace_s is None else grace_s)
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


def model_load_banner(config: ClusterConfig) -> str:
    """What `up` says about model loading: skipped, or where from and how long it takes."""
    load = config.model_load
    if not load.enabled:
        return ("model load: skipped (workers are ready at once; --model-load obs|dram|ems "
                "models cold and warm starts)")
    d = instance_deployment(config, "decode")
    alone = load_time(d, load.source).total_s
    line = (f"model load: from {load.source}; workers are 'loading' in /workers until their "
            f"load is over (one decode instance alone: {alone:,.1f} model s, "
            f"{alone / config.speedup:,.1f} wall s)")
    image = model_image(d).model_bytes
    if load.cache_in_ems and image > config.cache.capacity_bytes:
        line += (f"\nmodel load: EMS holds {config.cache.capacity_bytes / 1e9:,.0f} GB, less "
                 f"than the model ({image / 1e9:,.0f} GB): it will not be cached in EMS; raise "
                 f"cache.capacity_bytes to cache it")
    return line


def _tail(path: Path, num_lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-num_lines:])
    except OSError:
        return ""


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
    cluster = Cluster(config, log_dir, args.log_level, credentials)
    if problems := preflight(config, cluster.runs_ems):
        for problem in problems:
            print(f"supernode up: {problem}", file=sys.stderr)
        return 1
    if not is_loopback(config.ports.host) and not credentials.api_keys:
        print(f"supernode up: warning: {cluster.endpoint}/v1 has no API key; anyone who "
              "reaches it can use it (set --api-key or VLLM_API_KEY)", file=sys.stderr)
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster.start()
    try:
        cluster.wait_ready(args.ready_timeout)
    except RuntimeError as e:
        print(f"supernode up: {e}", file=sys.stderr)
        cluster.stop(grace_s=0.0)
        return 1
    _print_up(cluster, log_dir)
    supervise(cluster, args.no_restart, stop)
    print("supernode up: stopping", flush=True)
    cluster.stop()
    return 0


def _print_up(cluster: Cluster, log_dir: Path) -> None:
    config = cluster.config
    problems = check_memory(config)
    overcommitted = f"  OVERCOMMITTED (--allow-overcommit): {'; '.join(problems)}" if problems else ""
    names = ", ".join(m.name for m in served_models(config))
    print(f"supernode is up: {cluster.endpoint}/v1  model: {names}  "
          f"({config.num_prefill} prefill x {config.prefill.num_devices} devices, "
          f"{config.num_decode} decode x {config.decode.num_devices} devices, "
          f"{config.hardware}, speedup {config.speedup}){overcommitted}", flush=True)
    print(f"logs: {log_dir}   Ctrl-C stops", flush=True)
    print(model_load_banner(config), flush=True)
    for child in cluster.children:
        print(f"  {child.name:<12} pid {child.process.pid:<8} metrics {child.metrics_url}",
              flush=True)


def supervise(cluster: Cluster, no_restart: bool, stop: dict[str, bool]) -> None:
    """Until `stop["now"]`: restart exited children with back-off (or only report them)."""
    def report(message: str) -> None:
        print(f"supernode up: {message}", file=sys.stderr, flush=True)

    supervisor = Supervisor(cluster, RestartPolicy(), report, time.monotonic(), _tail)
    reported: set[int] = set()
    while not stop["now"]:
        if no_restart:
            for child in cluster.dead():
                if child.process.pid not in reported:
                    reported.add(child.process.pid)
                    report(f"{child.name} exited ({child.process.returncode}); see "
                           f"{child.log_path}")
        else:
            supervisor.poll(time.monotonic())
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
