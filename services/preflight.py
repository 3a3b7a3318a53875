"""What `supernode up` checks before it starts anything, so it fails fast naming the cause:
the fixed ports it will listen on are free, and the Redis behind EMS answers."""

from __future__ import annotations

import errno

import redis

from services.common.ports import bind_listener
from supernode.config import ClusterConfig

REDIS_TIMEOUT_S = 3.0


def port_problems(config: ClusterConfig, fixed_grpc: bool = True) -> list[str]:
    """A message for each fixed port of the deployment that cannot be listened on. Without
    `fixed_grpc` only the HTTP port counts (containers keep their gRPC ports inside their
    network)."""
    ports = config.ports
    wanted = [(ports.http, "the OpenAI HTTP endpoint (--port)")]
    if fixed_grpc:
        wanted += [(ports.scheduler_grpc, "the scheduler's gRPC registry (ports.scheduler_grpc)"),
                   (ports.ems_grpc, "EMS (ports.ems_grpc)")]
    problems = []
    for port, what in wanted:
        if not port:
            continue
        try:
            bind_listener(ports.host, port, what).close()
        except OSError as e:
            hint = (" (another server, perhaps another supernode, holds it)"
                    if e.errno == errno.EADDRINUSE else "")
            problems.append(f"{e.strerror}{hint}")
    return problems


def redis_problem(url: str) -> str | None:
    """None when Redis at `url` answers PING, else why not."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT_S,
                                      socket_timeout=REDIS_TIMEOUT_S)
    except ValueError as e:
        return f"--redis-url {url!r} is not a Redis URL: {e}"
    try:
        client.ping()
    except (redis.RedisError, OSError) as e:
        return f"cannot reach Redis at {url} (--redis-url): {e}"
    finally:
        client.close()
    return None


def preflight(config: ClusterConfig, runs_ems: bool) -> list[str]:
    """Everything that would make `up` fail after starting; empty when all is well. `runs_ems`:
    an EMS process will run (for the prefix cache or for model loads) over the cache backend."""
    problems = port_problems(config)
    if runs_ems and config.cache.backend == "redis" and config.cache.redis_url:
        problem = redis_problem(config.cache.redis_url)
        if problem:
            problems.append(problem)
    return problems
