"""The docker runtime: every instance a container of the project's image, through the Docker
SDK for Python.

`launch` makes sure the images exist (services.runtime.images), creates a private bridge
network `supernode-<run>`, and starts Redis (when EMS runs), the scheduler (its HTTP port
published on `ports.host`:`ports.http`, 127.0.0.1 by default, and nowhere else), EMS (on
Redis) and the pools (container_spec says what each runs). Containers and the network carry
the label `io.supernode.run=<run>`; everything created is tracked by id and removed by
`shutdown` (containers stopped first, so workers drain), whatever happened before. Containers
have no restart policy: supervision restarts one that exited unasked (services.supervisor,
as for processes). Faults act on the container as chaos tools do: kill (`docker kill`), pause
(`docker pause`, the cgroup freezer), disconnect (`docker network disconnect`, reconnect with
the same alias). Each container's output is copied to `<log dir>/<instance>.log`.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from docker.errors import DockerException, NotFound
from docker.models.containers import Container

from services.preflight import port_problems
from services.runtime import container_spec as specs
from services.runtime.base import (
    Instance,
    InstanceNotFound,
    RuntimeOptions,
    runs_ems,
    with_cluster_token,
)
from services.runtime.container_logs import follow, tail
from services.runtime.engine import connect
from services.runtime.images import DEFAULT_IMAGE, ensure_redis_image, ensure_supernode_image
from services.runtime.readiness import wait_ready
from services.supervisor import RestartPolicy, Supervisor

LABEL = "io.supernode.run"
LAUNCHER_LABEL = "io.supernode.launcher"
"""`<hostname>/<pid>` of the `up` that created it: leftovers of an `up` that was killed can be
told from live runs (`docker ps -a --filter label=io.supernode.run`)."""
REFRESH_S = 1.0
"""How often supervision asks the engine for the containers' states."""


@dataclass
class _State:
    """What services.supervisor reads as a child's process: refreshed from the engine."""

    status: str = "created"
    pid: int = 0
    returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode if self.status in ("exited", "dead") else None


@dataclass
class _Member:
    name: str
    role: str
    container: Container
    log_path: Path
    process: _State = field(default_factory=_State)


class DockerRuntime:
    name = "docker"

    def __init__(self, options: RuntimeOptions) -> None:
        options = dataclasses.replace(options, credentials=with_cluster_token(options.credentials))
        self.options = options
        self.config = options.config
        self.client = connect()
        self.run_id = uuid.uuid4().hex[:8]
        self.instance_id = uuid.uuid4().hex
        self.image = options.image or DEFAULT_IMAGE
        self.endpoint = f"http://{self.config.ports.host}:{self.config.ports.http}"
        self.children: list[_Member] = []
        self._retiring: list[_Member] = []
        self._disconnected: set[str] = set()
        self._network = None
        self._lock = threading.RLock()
        self._refreshed_at = 0.0
        self._reported: set[str] = set()
        self._supervisor = Supervisor(self, RestartPolicy(), options.report, time.monotonic(),
                                      tail)

    @property
    def network_name(self) -> str:
        return f"supernode-{self.run_id}"

    def preflight(self) -> list[str]:
        return port_problems(self.config, fixed_grpc=False)

    def launch(self) -> None:
        """RuntimeError naming the cause when the engine refuses (a missing image, a port
        already allocated, ...); what was created so far is removed by `shutdown`."""
        try:
            self._launch()
        except DockerException as e:
            raise RuntimeError(f"docker: {e}") from None

    def _launch(self) -> None:
        say, log_dir = self.options.report, self.options.log_dir
        ensure_supernode_image(self.client, self.image, self.options.build,
                               log_dir / "image-build.log", say)
        redis_image = (ensure_redis_image(self.client, log_dir / "image-build.log", say)
                       if runs_ems(self.config) else "")
        with self._lock:
            self._network = self.client.networks.create(
                self.network_name, driver="bridge", labels=self._labels())
            o = self.options
            if redis_image:
                self._create("redis", "redis", specs.redis_spec(), redis_image)
            self._create("scheduler", "scheduler", specs.scheduler_spec(
                self.config, o.credentials, o.log_level, self.instance_id))
            if runs_ems(self.config):
                self._create("ems", "ems", specs.ems_spec(self.config, o.credentials,
                                                          o.log_level))
            for role, n in (("prefill", self.config.num_prefill),
                            ("decode", self.config.num_decode)):
                for i in range(n):
                    self.start_instance(role, f"{role}-{i}")

    def _create(self, name: str, role: str, spec: specs.Spec, image: str = "") -> _Member:
        """Create, fill and start one container; it is tracked from creation on."""
        ports = ({f"{specs.HTTP_PORT}/tcp": (self.config.ports.host, self.config.ports.http)}
                 if spec.http else None)
        endpoint = self.client.api.create_endpoint_config(aliases=[name])
        container = self.client.containers.create(
            image or self.image, spec.command, name=f"supernode-{self.run_id}-{name}",
            hostname=name, environment=spec.environment, ports=ports,
            labels={**self._labels(), "io.supernode.role": role,
                    "io.supernode.instance": name},
            network=self.network_name, networking_config={self.network_name: endpoint})
        member = _Member(name, role, container, self.options.log_dir / f"{name}.log")
        self.children.append(member)
        if spec.files:
            container.put_archive("/run", specs.files_archive(spec.files))
        container.start()
        follow(container, member.log_path)
        return member

    def _labels(self) -> dict[str, str]:
        return {LABEL: self.run_id, LAUNCHER_LABEL: f"{socket.gethostname()}/{os.getpid()}"}

    def wait_ready(self, timeout_s: float) -> None:
        want = {"prefill": self.config.num_prefill, "decode": self.config.num_decode,
                "ems": int(runs_ems(self.config))}

        def dead() -> str | None:
            self._refresh(force=True)
            gone = next((m for m in self.children if m.process.poll() is not None), None)
            if gone is None:
                return None
            return (f"{gone.name} exited with {gone.process.returncode}; log "
                    f"{gone.log_path}:\n{tail(gone.log_path)}")

        wait_ready(self.endpoint, self.instance_id, want, dead, timeout_s,
                   str(self.options.log_dir))

    def instances(self) -> list[Instance]:
        with self._lock:
            return ([self._view(m, "stopping") for m in self._retiring]
                    + [self._view(m, None) for m in self.children])

    def _view(self, m: _Member, state: str | None) -> Instance:
        if state is None:
            state = ("exited" if m.process.poll() is not None
                     else "disconnected" if m.name in self._disconnected
                     else "paused" if m.process.status == "paused" else "running")
        return Instance(m.name, m.role, m.container.id[:12], state)

    def start_instance(self, role: str, name: str) -> None:
        o = self.options
        with self._lock:
            index = sum(m.role == role for m in self.children)
            spec = specs.worker_spec(role, name, self.config, o.credentials, o.log_level,
                                     runs_ems(self.config), index)
            self._create(name, role, spec)

    def stop_instance(self, name: str) -> None:
        with self._lock:
            member = self._member(name)
            self.children.remove(member)
            self._retiring.append(member)
        threading.Thread(target=self._retire, args=(member,), daemon=True,
                         name=f"stop-{name}").start()

    def _retire(self, member: _Member) -> None:
        """Stop (SIGTERM, the worker drains) and remove one container."""
        self._stop_and_remove([member], self.config.drain_timeout_s + 5.0)
        with self._lock:
            if member in self._retiring:  # else shutdown took it over
                self._retiring.remove(member)
            self._disconnected.discard(member.name)
        self.options.report(f"{member.name} stopped and removed")

    def _member(self, name: str) -> _Member:
        member = next((m for m in self.children if m.name == name), None)
        if member is None:
            raise InstanceNotFound(name)
        return member

    def kill_instance(self, name: str) -> None:
        """`docker kill` (SIGKILL); a paused container is thawed first, as the kill needs."""
        with self._lock:
            container = self._member(name).container
            container.reload()
            if container.status == "paused":
                container.unpause()
            container.kill()

    def pause_instance(self, name: str) -> None:
        with self._lock:
            member = self._member(name)
            member.container.pause()
            member.process.status = "paused"

    def resume_instance(self, name: str) -> None:
        with self._lock:
            member = self._member(name)
            member.container.reload()
            if member.container.status == "paused":
                member.container.unpause()
            member.process.status = member.container.status

    def disconnect_instance(self, name: str) -> None:
        with self._lock:
            member = self._member(name)
            self._network.disconnect(member.container)
            self._disconnected.add(name)

    def reconnect_instance(self, name: str) -> None:
        """Back on the network under the same alias (a restart in between keeps it off)."""
        with self._lock:
            member = self._member(name)
            member.container.reload()
            if self.network_name not in member.container.attrs["NetworkSettings"]["Networks"]:
                self._network.connect(member.container, aliases=[name])
            self._disconnected.discard(name)

    def respawn(self, member: _Member) -> None:
        """Start an exited container again (services.supervisor calls it)."""
        with open(member.log_path, "ab") as log:
            log.write(f"---- supernode up: restarting {member.name} ----\n".encode())
        started = time.time()
        member.container.start()
        member.container.reload()
        member.process = _State(member.container.status, member.container.attrs["State"]["Pid"])
        follow(member.container, member.log_path, since=started)

    def _refresh(self, force: bool = False) -> None:
        """Read every container's state from the engine (at most every REFRESH_S)."""
        now = time.monotonic()
        if not force and now - self._refreshed_at < REFRESH_S:
            return
        self._refreshed_at = now
        found = {c.id: c for c in self.client.containers.list(
            all=True, filters={"label": f"{LABEL}={self.run_id}"})}
        for m in self.children:
            c = found.get(m.container.id)
            state = c.attrs["State"] if c is not None else {"Status": "dead", "ExitCode": -1}
            m.process.status, m.process.pid = state["Status"], state.get("Pid", 0)
            m.process.returncode = state.get("ExitCode")

    def supervise(self, now_s: float, restart: bool) -> None:
        with self._lock:
            try:
                self._refresh()
            except DockerException as e:
                self.options.report(f"cannot read the containers' states: {e}")
                return
            if restart:
                self._supervisor.poll(now_s)
                return
            for m in self.children:
                key = f"{m.name}:{m.process.pid}"
                if m.process.poll() is not None and key not in self._reported:
                    self._reported.add(key)
                    self.options.report(f"{m.name} exited ({m.process.returncode}); see "
                                        f"{m.log_path}")

    def shutdown(self, drain: bool = True) -> None:
        """Stop every container (workers drain when `drain`), remove them and the network."""
        with self._lock:
            members = [*self._retiring, *self.children]
            self.children, self._retiring = [], []
        grace_s = self.config.drain_timeout_s + 5.0 if drain else 2.0
        self._stop_and_remove(members, grace_s)
        if self._network is not None:
            try:
                self._network.remove()
            except DockerException as e:
                self.options.report(f"could not remove network {self.network_name}: {e}")

    def _stop_and_remove(self, members: list[_Member], grace_s: float) -> None:
        """In parallel: unpause, stop (SIGTERM, SIGKILL after `grace_s`), remove."""
        def one(m: _Member) -> None:
            try:
                m.container.reload()
                if m.container.status == "paused":
                    m.container.unpause()
                m.container.stop(timeout=int(grace_s))
            except NotFound:
                return
            except DockerException:
                pass
            try:
                m.container.remove(force=True)
            except NotFound:
                pass
            except DockerException as e:
                self.options.report(f"could not remove container {m.container.id[:12]} "
                                    f"({m.name}): {e}")

        threads = [threading.Thread(target=one, args=(m,), daemon=True) for m in members]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def banner(self) -> list[str]:
        return [f"  {m.name:<12} container {m.container.id[:12]}  ({m.container.name})"
                for m in self.children] + [f"  network {self.network_name} (private; the "
                                           f"endpoint is published on {self.endpoint})"]
