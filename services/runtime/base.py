"""What every runtime of `supernode up` provides: the contract `Runtime`, and its data.

A runtime runs the instances of one deployment: the scheduler, EMS (and under docker the Redis
behind it) and the prefill and decode pools, each instance under a name that is also its
worker id (`prefill-0`, `decode-1`, `scheduler`, `ems`, `redis`). `launch` starts the
deployment as configured; afterwards the pools change one instance at a time
(`start_instance`, `stop_instance`), and the fault operations act on one instance the way an
operator's chaos tool would (kill it, freeze it, cut it off the network). A runtime is driven
from two threads (the supervision loop and the control API), so it serialises its own calls.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from services.common.credentials import Credentials
from supernode.config import ClusterConfig
from supernode.policy.kv_affinity import uses_local_cache


class InstanceNotFound(LookupError):
    """No instance has the name given."""


class Unsupported(RuntimeError):
    """This runtime cannot do that to an instance; the message says what can."""


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot start (e.g. no Docker engine); the message says how to get one."""


@dataclass(frozen=True)
class Instance:
    """One running (or restarting, or stopping) instance as a runtime sees it."""

    name: str
    role: str
    ref: str
    """The process id, or the container id (12 hex digits)."""
    state: str
    """running | paused | disconnected | stopping | exited"""
    metrics_url: str = ""
    """Its /metrics address where this machine can reach it ("" under docker: only inside the
    private network)."""


def report_to_stderr(message: str) -> None:
    print(f"supernode up: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RuntimeOptions:
    """Everything a runtime is built from."""

    config: ClusterConfig
    log_dir: Path
    log_level: str = "INFO"
    credentials: Credentials = field(default_factory=Credentials)
    image: str = ""
    """docker: the supernode image (built when missing); "" for the default tag."""
    build: bool = False
    """docker: rebuild the image before starting (layers are cached)."""
    report: Callable[[str], None] = report_to_stderr
    """Where exits, restarts and faults are reported."""


class Runtime(Protocol):
    name: str
    endpoint: str
    """The OpenAI endpoint as this machine reaches it, e.g. http://127.0.0.1:8000."""

    def preflight(self) -> list[str]:
        """What would make the start fail (a port taken, ...), each named; empty when none."""
        ...

    def launch(self) -> None:
        """Start the whole deployment as configured (returns once every instance started)."""
        ...

    def wait_ready(self, timeout_s: float) -> None:
        """Block until every configured worker registered; RuntimeError naming the cause."""
        ...

    def instances(self) -> list[Instance]: ...

    def start_instance(self, role: str, name: str) -> None:
        """Start one more instance of a pool under `name`; it registers by itself."""
        ...

    def stop_instance(self, name: str) -> None:
        """SIGTERM: the worker drains, then exits and is removed; returns at once."""
        ...

    def kill_instance(self, name: str) -> None:
        """SIGKILL, no drain; supervision restarts it."""
        ...

    def pause_instance(self, name: str) -> None: ...

    def resume_instance(self, name: str) -> None: ...

    def disconnect_instance(self, name: str) -> None:
        """Cut it off the network (raises Unsupported where the runtime cannot)."""
        ...

    def reconnect_instance(self, name: str) -> None: ...

    def supervise(self, now_s: float, restart: bool) -> None:
        """Called periodically: restart (or, without `restart`, report) instances that
        exited unasked, and forget stopped ones that are gone."""
        ...

    def shutdown(self, drain: bool = True) -> None:
        """Stop everything and remove what the runtime created: workers drain (up to
        `drain_timeout_s`), or, without `drain` (a failed start), get a short grace only."""
        ...

    def banner(self) -> list[str]:
        """Lines that tell the user where each instance runs."""
        ...


def with_cluster_token(credentials: Credentials) -> Credentials:
    """`credentials` with a fresh random cluster token when they have none: the gRPC plane of
    a deployment `up` starts is always authenticated."""
    if credentials.cluster_token:
        return credentials
    return dataclasses.replace(credentials, cluster_token=secrets.token_urlsafe(32))


def runs_ems(config: ClusterConfig) -> bool:
    """An EMS replica runs for the shared prefix cache (unless the cache is off or each
    prefill keeps its own), or to cache and pace model loads."""
    shared_cache = config.cache.enabled and not uses_local_cache(config.routing_policy)
    return shared_cache or config.model_load.enabled
