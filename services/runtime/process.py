"""The process runtime (the default): every instance a local process on loopback.

It is services.launcher's `Cluster` plus supervision (services.supervisor): an instance that
exits unasked is restarted with back-off. Faults act on the process: kill is SIGKILL, pause is
SIGSTOP (resume: SIGCONT). A process cannot be cut off the network on its own, so
`disconnect_instance` is Unsupported (the docker runtime can).
"""

from __future__ import annotations

import os
import signal
import threading
import time

from services.launcher import Child, Cluster, log_tail
from services.preflight import preflight
from services.runtime.base import Instance, InstanceNotFound, RuntimeOptions, Unsupported
from services.supervisor import RestartPolicy, Supervisor


class ProcessRuntime:
    name = "process"

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self.cluster = Cluster(options.config, options.log_dir, options.log_level,
                               options.credentials)
        self.endpoint = self.cluster.endpoint
        self._paused: set[str] = set()
        self._reported: set[int] = set()
        self._lock = threading.RLock()
        self._supervisor = Supervisor(self.cluster, RestartPolicy(), options.report,
                                      time.monotonic(), log_tail)

    def preflight(self) -> list[str]:
        return preflight(self.options.config, self.cluster.runs_ems)

    def launch(self) -> None:
        with self._lock:
            self.cluster.start()

    def wait_ready(self, timeout_s: float) -> None:
        self.cluster.wait_ready(timeout_s)

    def instances(self) -> list[Instance]:
        with self._lock:
            return ([self._view(c, "stopping") for c in self.cluster.retiring]
                    + [self._view(c, None) for c in self.cluster.children])

    def _view(self, child: Child, state: str | None) -> Instance:
        role = child.name.rsplit("-", 1)[0] if child.name[-1].isdigit() else child.name
        if state is None:
            state = ("exited" if child.process.poll() is not None
                     else "paused" if child.name in self._paused else "running")
        return Instance(child.name, role, str(child.process.pid), state, child.metrics_url)

    def start_instance(self, role: str, name: str) -> None:
        with self._lock:
            self.cluster.add_worker(role, name)

    def stop_instance(self, name: str) -> None:
        with self._lock:
            if name in self._paused:
                self.resume_instance(name)  # a frozen process cannot drain
            try:
                self.cluster.retire(name)
            except KeyError:
                raise InstanceNotFound(name) from None

    def kill_instance(self, name: str) -> None:
        self._signal(name, signal.SIGKILL)
        self._paused.discard(name)

    def pause_instance(self, name: str) -> None:
        self._signal(name, signal.SIGSTOP)
        self._paused.add(name)

    def resume_instance(self, name: str) -> None:
        self._signal(name, signal.SIGCONT)
        self._paused.discard(name)

    def disconnect_instance(self, name: str) -> None:
        raise Unsupported("the process runtime cannot cut one process off the network: use "
                          "`supernode up --runtime docker`, or stall it (`supernode fault "
                          "stall`)")

    def reconnect_instance(self, name: str) -> None:
        self.disconnect_instance(name)

    def _signal(self, name: str, signum: int) -> None:
        with self._lock:
            child = next((c for c in self.cluster.children if c.name == name), None)
            if child is None:
                raise InstanceNotFound(name)
            if child.process.poll() is None:
                os.kill(child.process.pid, signum)

    def supervise(self, now_s: float, restart: bool) -> None:
        with self._lock:
            for child in self.cluster.reap():
                self.options.report(f"{child.name} stopped ({child.process.returncode})")
            if restart:
                self._supervisor.poll(now_s)
                return
            for child in self.cluster.dead():
                if child.process.pid not in self._reported:
                    self._reported.add(child.process.pid)
                    self.options.report(f"{child.name} exited ({child.process.returncode}); "
                                        f"see {child.log_path}")

    def shutdown(self, drain: bool = True) -> None:
        with self._lock:
            for name in list(self._paused):
                self.resume_instance(name)
            self.cluster.stop(grace_s=None if drain else 0.0)

    def banner(self) -> list[str]:
        return [f"  {c.name:<12} pid {c.process.pid:<8} metrics {c.metrics_url}"
                for c in self.cluster.children]
