"""What each container of the docker runtime runs: its command, environment and files.

Every supernode role runs the project's image through its entry point (deploy/entrypoint.sh:
`serve ROLE` plus `--host $SUPERNODE_BIND_HOST --advertise-host $(hostname) --config
$SUPERNODE_CONFIG --log-level $SUPERNODE_LOG_LEVEL`). Inside the private network every role
serves gRPC on 50051 and workers and EMS serve /metrics on 9400, as under compose; each
container's hostname and network alias is its instance name, which is also its worker id.

Secrets never appear in a command line, an environment value or an image layer: they are
files copied into the created container (before it starts) under /run/supernode, owned by the
image's user and readable by it alone (0400), and the processes read them through the
`*_FILE` variables (services/common/credentials.py). The deployment config goes there too, so
every role runs exactly the configuration `up` resolved.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from services.common.credentials import Credentials
from supernode.config import ClusterConfig, to_dict
from supernode.deployment import served_models
from supernode.lifecycle.models import initial_model

GRPC_PORT = 50051
METRICS_PORT = 9400
HTTP_PORT = 8000
FILES_DIR = "/run/supernode"
IMAGE_UID = 10001
"""The user deploy/Dockerfile runs as."""
REDIS_URL = "redis://redis:6379/0"


@dataclass(frozen=True)
class Spec:
    """One container to create."""

    command: list[str]
    environment: dict[str, str]
    files: dict[str, bytes]
    """Path under FILES_DIR -> contents (0400, owned by IMAGE_UID)."""
    http: bool = False
    """Publishes the OpenAI endpoint."""


def container_config(config: ClusterConfig) -> ClusterConfig:
    """The config as the containers see it: a tokenizer file is copied in with the others."""
    if config.tokenizer_path:
        name = Path(config.tokenizer_path).name
        return dataclasses.replace(config, tokenizer_path=f"{FILES_DIR}/tokenizer/{name}")
    return config


def common_files(config: ClusterConfig, credentials: Credentials) -> dict[str, bytes]:
    files = {"config.yaml": yaml.safe_dump(to_dict(container_config(config)),
                                           sort_keys=False).encode()}
    if credentials.cluster_token:
        files["cluster_token"] = credentials.cluster_token.encode()
    if config.tokenizer_path:
        path = Path(config.tokenizer_path)
        files[f"tokenizer/{path.name}"] = path.read_bytes()
    return files


def _environment(log_level: str, credentials: Credentials) -> dict[str, str]:
    env = {"SUPERNODE_BIND_HOST": "0.0.0.0", "SUPERNODE_CONFIG": f"{FILES_DIR}/config.yaml",
           "SUPERNODE_LOG_LEVEL": log_level}
    if credentials.cluster_token:
        env["SUPERNODE_CLUSTER_TOKEN_FILE"] = f"{FILES_DIR}/cluster_token"
    return env


def scheduler_spec(config: ClusterConfig, credentials: Credentials, log_level: str,
                   instance_id: str) -> Spec:
    files, env = common_files(config, credentials), _environment(log_level, credentials)
    if credentials.admin_key:
        files["admin_key"] = credentials.admin_key.encode()
        env["SUPERNODE_ADMIN_KEY_FILE"] = f"{FILES_DIR}/admin_key"
    if credentials.api_keys:
        files["api_keys"] = json.dumps(dict(credentials.api_keys)).encode()
        env["SUPERNODE_API_KEYS_FILE"] = f"{FILES_DIR}/api_keys"
    command = ["serve", "scheduler", "--port", str(GRPC_PORT), "--http-port", str(HTTP_PORT),
               "--instance-id", instance_id]
    return Spec(command, env, files, http=True)


def ems_spec(config: ClusterConfig, credentials: Credentials, log_level: str) -> Spec:
    command = ["serve", "ems", "--port", str(GRPC_PORT), "--metrics-port", str(METRICS_PORT),
               "--scheduler", f"scheduler:{GRPC_PORT}", "--redis-url", REDIS_URL]
    return Spec(command, _environment(log_level, credentials), common_files(config, credentials))


def worker_spec(role: str, name: str, config: ClusterConfig, credentials: Credentials,
                log_level: str, with_ems: bool, index: int = 0) -> Spec:
    """The `index`-th worker of `role`: with several served models it starts with the
    lifecycle's placement for that index, as under the process runtime."""
    command = ["serve", role, "--port", str(GRPC_PORT), "--metrics-port", str(METRICS_PORT),
               "--scheduler", f"scheduler:{GRPC_PORT}", "--worker-id", name]
    if len(served_models(config)) > 1:
        command += ["--served-model", initial_model(config, index).name]
    if with_ems:
        command += ["--ems", f"ems:{GRPC_PORT}"]
    return Spec(command, _environment(log_level, credentials), common_files(config, credentials))


def redis_spec() -> Spec:
    """EMS keeps the pool under its own capacity and LRU, so Redis must not evict behind its
    back (noeviction; the cap is a safety net); nothing is persisted (the run's state goes
    with its containers)."""
    command = ["redis-server", "--protected-mode", "no", "--maxmemory", "1gb",
               "--maxmemory-policy", "noeviction", "--save", "", "--appendonly", "no"]
    return Spec(command, {}, {})


def files_archive(files: dict[str, bytes]) -> bytes:
    """A tar of `files` under `supernode/` (for put_archive into /run): directories 0700 and
    files 0400, all owned by the image's user."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        dirs = {"supernode"} | {f"supernode/{p}".rsplit("/", 1)[0] for p in files}
        for name in sorted(dirs):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, now
            info.uid = info.gid = IMAGE_UID
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(f"supernode/{path}")
            info.size, info.mode, info.mtime = len(data), 0o400, now
            info.uid = info.gid = IMAGE_UID
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
