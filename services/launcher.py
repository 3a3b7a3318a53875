"""The local processes of one deployment: every role as its own process on loopback.

`Cluster` starts the scheduler, EMS, the prefill pool and the decode pool (each `python -m
services.X` with the same resolved config file, written to the log directory, and ports fixed
for the child's lifetime), adds and retires workers while it runs, waits until its own
scheduler (told apart from any other server by an instance id) reports every worker
registered, and stops the children by their process ids (SIGTERM: workers drain; SIGKILL after
the drain timeout plus a grace period). The children share one cluster token (the user's, or a
fresh random one), passed in their environment (restarts too), never in argv or the config
file. `supernode up` (services/up) runs it as the process runtime (services/runtime/process.py).
"""

from __future__ import annotations

import dataclasses
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from services.common.credentials import Credentials, child_environment
from services.runtime.base import runs_ems
from services.runtime.readiness import wait_ready
from supernode.config import ClusterConfig, to_dict
from supernode.deployment import served_models
from supernode.lifecycle.models import initial_model


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]
    metrics_url: str
    http: bool = False
    """Serves the HTTP endpoint: its environment carries the API and admin keys too."""


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
        """Supervised children."""
        self.retiring: list[Child] = []
        """Workers told to stop (draining) and not yet exited; never restarted."""
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
    def runs_ems(self) -> bool:
        return runs_ems(self.config)

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

    def retire(self, name: str) -> Child:
        """SIGTERM a worker (it drains, then exits) and stop supervising it; it is kept in
        `retiring` until it has exited (`reap`). KeyError when no child has that name."""
        child = next((c for c in self.children if c.name == name), None)
        if child is None:
            raise KeyError(name)
        self.children.remove(child)
        self.retiring.append(child)
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
        return child

    def reap(self) -> list[Child]:
        """Forget the retired children that have exited; returns them."""
        done = [c for c in self.retiring if c.process.poll() is not None]
        self.retiring = [c for c in self.retiring if c not in done]
        return done

    def wait_ready(self, timeout_s: float) -> None:
        """Block until our scheduler's /health reports every pool registered (ready, or loading
        its model); RuntimeError on a dead child (with the tail of its log)."""
        want = {"prefill": self.config.num_prefill, "decode": self.config.num_decode,
                "ems": 1 if self.runs_ems else 0}

        def dead() -> str | None:
            if not (gone := self.dead()):
                return None
            return (f"{gone[0].name} exited with {gone[0].process.returncode}; log "
                    f"{gone[0].log_path}:\n{log_tail(gone[0].log_path)}")

        wait_ready(self.endpoint, self.instance_id, want, dead, timeout_s, str(self.log_dir))

    def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM every child (retiring ones included), then SIGKILL those still running after
        the workers' drain timeout plus `grace_s` (default 5 s)."""
        everyone = [*self.children, *self.retiring]
        for child in reversed(everyone):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.drain_timeout_s + (
            5.0 if grace_s is None else grace_s)
        for child in everyone:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.retiring = []


def log_tail(path: Path, num_lines: int = 20) -> str:
    """The last lines of a log file ("" when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-num_lines:])
    except OSError:
        return ""
