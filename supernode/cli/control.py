"""The control channel of a running `supernode up`: where to find it, and a client for it.

`supernode up` serves a small HTTP control API on loopback (an ephemeral port; see
services/up/control.py) and writes its address and a fresh random token to a state file that
only its user can read: `up-<HTTP port>.json` in `$XDG_RUNTIME_DIR/supernode/`, or in
`<tmp>/supernode-<uid>/` without XDG_RUNTIME_DIR (the directory is 0700, the file 0600; a
directory that another user owns or others can write is refused). `supernode scale`,
`supernode autoscale` and `supernode fault` find the `up` serving an endpoint by its port.
Every call carries `Authorization: Bearer <token>`: the state file's token, or the admin key
when one is configured and given (`--admin-key`, `SUPERNODE_ADMIN_KEY`).

Routes (JSON; errors as OpenAI error JSON):
    GET    /instances                   the runtime, pool sizes and every instance
    PUT    /pools/{pool}  {"instances": N}   scale prefill or decode to N
    POST   /instances/{name}/kill       SIGKILL the process / kill the container
    POST   /instances/{name}/pause      {"duration_s": S}: SIGSTOP / docker pause, for S s
    POST   /instances/{name}/disconnect {"duration_s": S}: off the network for S s (docker)
    GET    /faults, DELETE /faults      the runtime faults in force; end them all
    DELETE /faults/{id}                 end one
    GET    /metrics                     Prometheus text: instances, scale events, faults
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

POOLS = ("prefill", "decode")
"""The pools the control API resizes."""
MAX_INSTANCES = 32
"""The most instances a pool may hold (the control API refuses more)."""


class ControlError(RuntimeError):
    """The control channel cannot be found or used; the message says why."""


@dataclass(frozen=True)
class UpState:
    """What a running `supernode up` wrote about itself."""

    pid: int
    runtime: str
    endpoint: str
    control_url: str
    token: str
    log_dir: str


def state_dir(environ: dict[str, str] | None = None) -> Path:
    environ = dict(os.environ) if environ is None else environ
    runtime_dir = environ.get("XDG_RUNTIME_DIR", "")
    if runtime_dir and Path(runtime_dir).is_dir():
        return Path(runtime_dir) / "supernode"
    return Path(tempfile.gettempdir()) / f"supernode-{os.getuid()}"


def state_path(port: int, environ: dict[str, str] | None = None) -> Path:
    return state_dir(environ) / f"up-{port}.json"


def private_dir(path: Path, create: bool = True) -> Path:
    """`path`, created 0700 if missing (when `create`); ControlError when another user owns it
    or others may write to it (someone could plant a state file there)."""
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ControlError(f"{path} belongs to another user or is writable by others; "
                           "remove it or set XDG_RUNTIME_DIR")
    return path


def write_state(state: UpState, port: int) -> Path:
    """Write the state file for the `up` serving `port` (0600, atomically)."""
    path = state_path(port)
    private_dir(path.parent)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state.__dict__, f)
    tmp.replace(path)
    return path


def read_state(url: str) -> UpState:
    """The state of the `up` whose endpoint is `url` (its port selects the file)."""
    port = urlsplit(url).port or 80
    path = state_path(port)
    try:
        private_dir(path.parent, create=False)
        data = json.loads(path.read_text())
        state = UpState(**data)
    except FileNotFoundError:
        raise ControlError(f"no `supernode up` serves port {port} on this machine for this "
                           f"user (no {path})") from None
    except (OSError, ValueError, TypeError) as e:
        raise ControlError(f"cannot read {path}: {e}") from None
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        raise ControlError(f"the `supernode up` that wrote {path} (pid {state.pid}) is gone"
                           ) from None
    except PermissionError:
        pass
    return state


class ControlClient:
    """Calls the control API of one `up`."""

    def __init__(self, control_url: str, token: str, timeout_s: float = 30.0) -> None:
        self.control_url = control_url.rstrip("/")
        self._client = httpx.Client(headers={"authorization": f"Bearer {token}"},
                                    timeout=timeout_s)

    @classmethod
    def for_endpoint(cls, url: str, admin_key: str | None = None) -> tuple[ControlClient, UpState]:
        state = read_state(url)
        return cls(state.control_url, admin_key or state.token), state

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON answer; ControlError with the server's message on an error status, or
        when the control API cannot be reached."""
        try:
            response = self._client.request(method, self.control_url + path, json=body)
        except httpx.HTTPError as e:
            raise ControlError(f"cannot reach the control API at {self.control_url}: {e}"
                               ) from None
        if response.is_error:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise ControlError(f"HTTP {response.status_code}: {message}")
        return response.json()

    def instances(self) -> dict[str, Any]:
        return self.call("GET", "/instances")

    def scale(self, pool: str, num_instances: int) -> dict[str, Any]:
        return self.call("PUT", f"/pools/{pool}", {"instances": num_instances})
