"""Reaching a Docker engine through the Docker SDK for Python, or saying how to get one."""

from __future__ import annotations

import os

import docker
from docker.errors import DockerException

from services.runtime.base import RuntimeUnavailable

HOW_TO_GET_ONE = (
    "Start one (e.g. `sudo systemctl start docker`, or Docker Desktop), or point DOCKER_HOST "
    "at one. On a Debian/Ubuntu machine without a container registry, `sudo scripts/local-docker` "
    "(in the supernode source tree) installs Debian's engine, starts it and builds the local "
    "python:3.11-slim base image the supernode image is built on.")


def connect(timeout_s: float = 120.0) -> docker.DockerClient:
    """A client of the engine at DOCKER_HOST (default: the local socket) that answered a ping;
    RuntimeUnavailable naming the cause and how to get an engine otherwise."""
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except DockerException as e:
        raise RuntimeUnavailable(f"--runtime docker: no Docker engine answers at {where} "
                                 f"({e}). {HOW_TO_GET_ONE}") from None
    return client
