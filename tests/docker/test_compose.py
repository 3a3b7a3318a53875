"""The compose stack for real: build, bring up (offline override), stream, scale, lose a worker.

Prepares Docker with scripts/local-docker (installs the engine and a local
python:3.11-slim stand-in where they are missing; needs root), builds the image, starts
docker-compose.yml + deploy/compose.offline.yml under its own project name, and drives the
OpenAI endpoint on 127.0.0.1:8000 with the `openai` client. The stack's secrets (cluster
token, admin key) are made by deploy/make-secrets.sh in a temporary directory. Skips only
where no Docker engine can be started at all. Everything the stack created (containers, network, volumes) is removed
at the end; the built images stay, so the next run's builds are cache hits.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import AsyncOpenAI, OpenAI

from tests.docker.engine import prepare_engine

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
# Per-run project name: two runs on one engine (two sessions, two CI jobs) never touch each
# other's containers; a dead run's leftovers are removed by the next run (see _remove_stale).
PROJECT_PREFIX = "supernode-citest-"
PROJECT = f"{PROJECT_PREFIX}{os.getpid()}"
FILES = ["-f", "docker-compose.yml", "-f", "deploy/compose.offline.yml"]
MODEL = "deepseek-r1"
LOG_FILE = Path(tempfile.gettempdir()) / "supernode-citest.log"  # the stack's logs, after down


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True,
                      check=False).returncode == 0:
        return ["docker", "compose"]
    raise AssertionError("a Docker engine answers but neither docker-compose nor "
                         "`docker compose` is installed")


def _port_or_free(preferred: int) -> int:
    """`preferred` when nothing listens there on 127.0.0.1, else any free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


class Stack:
    """One compose project: the command to drive it and where its endpoint is."""

    def __init__(self, compose: list[str], env: dict[str, str], http_port: int) -> None:
        self.compose = compose
        self.env = env
        self.http_port = http_port
        self.base_url = f"http://127.0.0.1:{http_port}"
        self.prometheus_url = "http://127.0.0.1:9090"
        self.admin_key = ""

    def run(self, *args: str, timeout: float = 300, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        return _run([*self.compose, "-p", PROJECT, *FILES, *args], timeout, self.env, check)

    def containers(self, service: str | None = None, running_only: bool = True) -> list[str]:
        cmd = ["docker", "ps", "-q", "--no-trunc",
               "--filter", f"label=com.docker.compose.project={PROJECT}"]
        if service:
            cmd += ["--filter", f"label=com.docker.compose.service={service}"]
        if not running_only:
            cmd.append("-a")
        return _run(cmd, 60).stdout.split()

    def hostname(self, container: str) -> str:
        return _run(["docker", "inspect", "-f", "{{.Config.Hostname}}", container],
                    60).stdout.strip()

    def get_json(self, path: str, base_url: str | None = None,
                 admin: bool = True) -> tuple[int, object]:
        """GET as JSON; to the scheduler with the admin key unless `admin` is False."""
        headers = {"authorization": f"Bearer {self.admin_key}"} if admin and not base_url else {}
        request = urllib.request.Request((base_url or self.base_url) + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def wait_healthy(self, num_decode: int, timeout_s: float = 180) -> None:
        """Every container healthy and the scheduler's pools at the expected sizes."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            ids = self.containers()
            fmt = ("{{.Name}} {{.State.Status}} "
                   "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}")
            states = _run(["docker", "inspect", "-f", fmt, *ids], 60,
                          check=False).stdout.split("\n") if ids else []
            unhealthy = [s for s in states if s and not s.endswith(" healthy")]
            try:
                status, body = self.get_json("/health")
            except OSError as e:
                status, body = 0, str(e)
            workers = body.get("workers", {}) if isinstance(body, dict) else {}
            if (not unhealthy and status == 200 and workers.get("decode") == num_decode
                    and workers.get("prefill", 0) >= 1):
                return
            last = f"containers not healthy: {unhealthy}; /health: {status} {body}"
            time.sleep(1)
        logs = self.run("logs", "--tail", "30", check=False, timeout=60).stdout[-6000:]
        raise AssertionError(f"stack not healthy after {timeout_s:.0f}s: {last}\n{logs}")

    def decode_worker_containers(self) -> dict[str, str]:
        """worker id -> container id, for every live decode worker (from /sd/targets)."""
        by_host = {self.hostname(c): c for c in self.containers("decode")}
        _, targets = self.get_json("/sd/targets")
        result = {}
        for group in targets:  # type: ignore[union-attr]
            if group["labels"]["role"] != "decode":
                continue
            host = group["targets"][0].rsplit(":", 1)[0]
            if host in by_host:
                result[group["labels"]["worker_id"]] = by_host[host]
        return result


def _remove_stale(stack: Stack) -> None:
    """`down -v` the projects of earlier runs whose pytest process is gone (killed runs)."""
    listings = [
        ["docker", "ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}'],
        ["docker", "volume", "ls", "--format", '{{.Label "com.docker.compose.project"}}'],
        ["docker", "network", "ls", "--format", '{{.Label "com.docker.compose.project"}}'],
    ]
    projects = {name for cmd in listings for name in _run(cmd, 60, check=False).stdout.split()}
    for name in sorted(projects):
        pid = name.removeprefix(PROJECT_PREFIX)
        if name.startswith(PROJECT_PREFIX) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _run([*stack.compose, "-p", name, *FILES, "down", "-v", "--remove-orphans", "-t", "1"],
                 180, stack.env, check=False)


def _down(stack: Stack) -> None:
    if stack.containers(running_only=False):
        LOG_FILE.write_text(stack.run("logs", "--no-color", "-t", timeout=120,
                                      check=False).stdout)
    stack.run("down", "-v", "--remove-orphans", "-t", "5", timeout=180, check=False)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    prepare_engine()
    env = dict(os.environ)
    env.setdefault("SUPERNODE_SPEEDUP", "1.0")
    stack = Stack(_compose_command(), env, http_port=0)
    _remove_stale(stack)
    stack.http_port = _port_or_free(8000)
    stack.base_url = f"http://127.0.0.1:{stack.http_port}"
    env["SUPERNODE_HTTP_PORT"] = str(stack.http_port)
    secrets_dir = Path(tempfile.mkdtemp(prefix="supernode-citest-secrets-")) / "secrets"
    _run(["sh", "deploy/make-secrets.sh", str(secrets_dir), str(secrets_dir.parent / "auth.env")],
         60)
    env["SUPERNODE_SECRETS_DIR"] = str(secrets_dir)
    stack.admin_key = (secrets_dir / "admin_key").read_text()
    env["PROMETHEUS_PORT"] = str(_port_or_free(9090))
    stack.prometheus_url = f"http://127.0.0.1:{env['PROMETHEUS_PORT']}"
    # One build of the supernode image (the other roles share its tag), plus the offline
    # Redis and Prometheus images.
    parallel = ["--parallel"] if stack.compose == ["docker-compose"] else []  # v2: by default
    stack.run("build", *parallel, "scheduler", "redis", "prometheus", timeout=600)
    try:
        stack.run("up", "-d", "--no-build", timeout=300)
        stack.wait_healthy(num_decode=1)
        yield stack
    finally:
        _down(stack)


def test_stack_streams_a_chat_completion(stack: Stack) -> None:
    client = OpenAI(base_url=stack.base_url + "/v1", api_key="unused", max_retries=0,
                    timeout=60)
    assert [m.id for m in client.models.list().data] == [MODEL]
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello from docker compose"}],
        max_tokens=24, stream=True, stream_options={"include_usage": True},
        extra_body={"ignore_eos": True})
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert len([p for p in pieces if p]) >= 2, pieces
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == 24


def test_prefix_cache_goes_through_ems_into_redis(stack: Stack) -> None:
    client = OpenAI(base_url=stack.base_url + "/v1", api_key="unused", max_retries=0,
                    timeout=60)
    prompt = "a long shared system prompt " * 120  # several 128-token blocks
    cached = 0
    for _ in range(10):  # the first request stores its blocks asynchronously
        response = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=4)
        details = response.usage.prompt_tokens_details
        cached = (details.cached_tokens or 0) if details else 0
        if cached:
            break
        time.sleep(0.5)
    assert cached >= 128, f"no prefix-cache hit after 10 identical requests ({cached})"
    (redis,) = stack.containers("redis")
    keys = _run(["docker", "exec", redis, "redis-cli", "dbsize"], 60).stdout.strip()
    assert int(keys) > 0, "EMS stored nothing in Redis"


async def _chat_many(base_url: str, n: int, max_tokens: int) -> list[dict]:
    client = AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)

    async def one(i: int) -> dict:
        response = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"request {i}"}],
            max_tokens=max_tokens, extra_body={"ignore_eos": True})
        return {"tokens": response.usage.completion_tokens,
                "finish": response.choices[0].finish_reason,
                **response.model_extra["supernode"]}

    try:
        return await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await client.close()


def test_scaled_decode_pool_serves_on_both_containers(stack: Stack) -> None:
    stack.run("up", "-d", "--no-build", "--no-recreate", "--scale", "decode=2", timeout=300)
    stack.wait_healthy(num_decode=2, timeout_s=120)
    workers = stack.decode_worker_containers()
    assert len(set(workers.values())) == 2, workers
    served: set[str] = set()
    for _ in range(5):  # concurrent batches spread over both; a few tries at most
        results = asyncio.run(_chat_many(stack.base_url, n=12, max_tokens=16))
        assert all(r["tokens"] == 16 and r["finish"] == "length" for r in results), results
        served |= {workers[r["decode_worker"]] for r in results}
        if len(served) == 2:
            break
    assert served == set(workers.values()), (served, workers)
    # Prometheus discovers both replicas (through the scheduler's /sd/targets, with the admin
    # key) and scrapes them and the scheduler (whose /metrics needs the key too).
    deadline, up, want = time.monotonic() + 45, set(), {*workers, "scheduler"}
    while time.monotonic() < deadline:
        _, body = stack.get_json("/api/v1/targets?state=active", stack.prometheus_url)
        up = {t["labels"].get("worker_id") for t in body["data"]["activeTargets"]  # type: ignore[index]
              if t["health"] == "up"}
        if want <= up:
            break
        time.sleep(2)
    assert want <= up, f"Prometheus scrapes {sorted(up)}, want {sorted(want)}"


def test_operator_routes_need_the_admin_key_from_the_secret(stack: Stack) -> None:
    """/workers and /metrics answer 401 without the admin key and 200 with the one compose
    mounted from the secrets directory; no container has a secret value in its environment or
    command line."""
    for path in ("/workers", "/sd/targets"):
        status, body = stack.get_json(path, admin=False)
        assert status == 401 and body["error"]["type"] == "AuthenticationError", (path, body)  # type: ignore[index]
        assert stack.get_json(path)[0] == 200, path
    metrics = urllib.request.Request(stack.base_url + "/metrics",
                                     headers={"authorization": f"Bearer {stack.admin_key}"})
    with urllib.request.urlopen(metrics, timeout=5) as r:
        assert r.status == 200 and b"vllm:request_success_total" in r.read()
    assert stack.get_json("/metrics", admin=False)[0] == 401
    token = (Path(stack.env["SUPERNODE_SECRETS_DIR"]) / "cluster_token").read_text()
    for container in stack.containers():
        config = _run(["docker", "inspect", "-f", "{{json .Config.Env}} {{json .Config.Cmd}}",
                       container], 60).stdout
        assert token not in config and stack.admin_key not in config, container


def _running_requests(container: str) -> float:
    """vllm:num_requests_running of the decode worker in `container`, from its /metrics."""
    probe = ("import urllib.request;print(urllib.request.urlopen("
             "'http://127.0.0.1:9400/metrics',timeout=5).read().decode())")
    text = _run(["docker", "exec", container, "python", "-c", probe], 60).stdout
    values = [float(m.group(1)) for m in
              re.finditer(r"^vllm:num_requests_running\{[^}]*\} (\S+)$", text, re.MULTILINE)]
    return sum(values)


def test_requests_complete_when_a_decode_container_stops_mid_load(stack: Stack) -> None:
    stack.run("up", "-d", "--no-build", "--no-recreate", "--scale", "decode=2", timeout=300)
    stack.wait_healthy(num_decode=2, timeout_s=120)
    workers = stack.decode_worker_containers()
    assert len(workers) == 2, workers
    max_tokens = 400  # several seconds of decoding at speedup 1

    async def scenario() -> tuple[list[dict], str, float]:
        load = asyncio.create_task(_chat_many(stack.base_url, n=24, max_tokens=max_tokens))
        await asyncio.sleep(1.5)
        running = {c: await asyncio.to_thread(_running_requests, c) for c in workers.values()}
        victim = max(running, key=lambda c: running[c])
        assert running[victim] > 0, f"no decode container is running requests: {running}"
        assert not load.done()
        await asyncio.to_thread(_run, ["docker", "stop", "-t", "3", victim], 60)
        return await load, victim, running[victim]

    results, victim, victim_running = asyncio.run(scenario())
    victim_ids = {w for w, c in workers.items() if c == victim}
    assert all(r["tokens"] == max_tokens and r["finish"] == "length" for r in results), results
    failed_over = [r for r in results if r["num_failovers"] >= 1]
    assert failed_over, f"{victim_running:.0f} requests ran on the stopped container, " \
                        f"none failed over: {results}"
    assert all(r["decode_worker"] not in victim_ids for r in failed_over), failed_over
    stack.wait_healthy(num_decode=1, timeout_s=60)


def test_teardown_removes_containers_networks_and_volumes(stack: Stack) -> None:
    _down(stack)
    assert stack.containers(running_only=False) == []
    label = f"label=com.docker.compose.project={PROJECT}"
    assert _run(["docker", "network", "ls", "-q", "--filter", label], 60).stdout.split() == []
    assert _run(["docker", "volume", "ls", "-q", "--filter", label], 60).stdout.split() == []
