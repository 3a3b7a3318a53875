"""The images the docker runtime runs: the supernode image and a Redis image, built through
the Docker SDK when missing (or when asked), never pulled implicitly.

- supernode: `deploy/Dockerfile` of this source tree, tagged `supernode:<version>` (the tag
  docker-compose.yml and tests/docker use), built from the repository root with its
  `.dockerignore`.
- Redis: `redis:7.2.5` when the engine already has it (compose's image); otherwise
  `supernode-offline/redis:bookworm`, built from `deploy/offline/redis.Dockerfile` (Debian's
  redis-server on the python:3.11-slim base), which needs no registry beyond that base image.
Build output goes to a log file; a failed build raises RuntimeError with its last lines.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import APIError, BuildError, ImageNotFound

import supernode

DEFAULT_IMAGE = f"supernode:{supernode.__version__}"
REDIS_IMAGE = "redis:7.2.5"
OFFLINE_REDIS_IMAGE = "supernode-offline/redis:bookworm"
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True


def build(client: docker.DockerClient, context: Path, dockerfile: str, tag: str,
          log_path: Path) -> None:
    """`docker build` through the SDK (layer cache on), streaming its output to `log_path`."""
    lines: list[str] = []
    with open(log_path, "a") as log:
        try:
            for item in client.api.build(path=str(context), dockerfile=dockerfile, tag=tag,
                                         rm=True, forcerm=True, decode=True):
                text = item.get("stream") or item.get("status") or ""
                if text:
                    log.write(text)
                    lines.append(text)
                if "error" in item:
                    log.write(f"ERROR: {item['error']}\n")
                    raise BuildError(item["error"], [])
        except (BuildError, APIError) as e:
            tail = "".join(lines[-15:])
            raise RuntimeError(f"building {tag} failed: {e}; log {log_path}:\n{tail}") from None


def ensure_supernode_image(client: docker.DockerClient, tag: str, rebuild: bool,
                           log_path: Path, say: Callable[[str], None]) -> None:
    """The supernode image exists afterwards: built from this source tree when missing or
    when `rebuild`; RuntimeError when there is no source tree to build from."""
    if has_image(client, tag) and not rebuild:
        return
    if not (SOURCE_ROOT / "deploy" / "Dockerfile").exists():
        raise RuntimeError(f"the image {tag} is missing and {SOURCE_ROOT} has no "
                           "deploy/Dockerfile to build it from: build it from a supernode "
                           f"checkout (docker build -f deploy/Dockerfile -t {tag} .) or pass "
                           "--image")
    say(f"building {tag} from {SOURCE_ROOT} (log {log_path})")
    build(client, SOURCE_ROOT, "deploy/Dockerfile", tag, log_path)


def ensure_redis_image(client: docker.DockerClient, log_path: Path,
                       say: Callable[[str], None]) -> str:
    """The tag of a Redis image the engine has, building the offline one when there is none."""
    for tag in (REDIS_IMAGE, OFFLINE_REDIS_IMAGE):
        if has_image(client, tag):
            return tag
    context = SOURCE_ROOT / "deploy" / "offline"
    if not (context / "redis.Dockerfile").exists():
        raise RuntimeError(f"no Redis image ({REDIS_IMAGE} or {OFFLINE_REDIS_IMAGE}) and no "
                           f"{context}/redis.Dockerfile to build one: `docker pull "
                           f"{REDIS_IMAGE}`")
    say(f"building {OFFLINE_REDIS_IMAGE} from {context} (log {log_path})")
    build(client, context, "redis.Dockerfile", OFFLINE_REDIS_IMAGE, log_path)
    return OFFLINE_REDIS_IMAGE
