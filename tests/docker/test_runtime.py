"""`supernode up --runtime docker` for real: containers from the project's image on a private
network, streaming through the `openai` client, `scale`, `autoscale` under a bounded burst,
faults on containers, and nothing left behind.

Prepares Docker with scripts/local-docker (as test_compose.py does; skips only where no engine
can be started) and runs `supernode up --runtime docker --build`, which builds the image
through the Docker SDK under the tag compose uses (supernode:0.1.0), so a run after the
compose test finds every layer cached. Secrets (admin key, API key) reach `up` through its
environment only. Whatever the run created is removed by its label at the end, also on failure.
"""

from __future__ import annotations

import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from openai import OpenAI

from services.launcher import free_port
from services.runtime.containers import LAUNCHER_LABEL
from tests.docker.engine import prepare_engine
from tests.e2e.running_up import (
    CLI,
    SMALL_DECODE,
    Up,
    burst,
    decisions,
    ignore_sigint,
    running_up,
    wait_for,
    workers,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]
LABEL = "io.supernode.run"
ADMIN_KEY, API_KEY = secrets.token_hex(16), f"sk-{secrets.token_hex(8)}"


class Run:
    """The `up` and the Docker objects of its run (found by its run label)."""

    def __init__(self, up: Up, client: docker.DockerClient, run_id: str) -> None:
        self.up, self.client, self.run_id = up, client, run_id

    def containers(self) -> list:
        return self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.run_id}"})

    def container(self, instance: str):
        (c,) = [c for c in self.containers() if c.labels["io.supernode.instance"] == instance]
        return c

    def networks(self) -> list:
        return self.client.networks.list(filters={"label": f"{LABEL}={self.run_id}"})

    def remove_leftovers(self) -> None:
        for c in self.containers():
            c.remove(force=True)
        for n in self.networks():
            n.remove()


def remove_dead_runs(client: docker.DockerClient) -> None:
    """Remove what an `up` on this machine left behind when it was killed (its pid is gone)."""
    host = socket.gethostname()

    def dead(launcher: str) -> bool:
        owner, _, pid = launcher.partition("/")
        return owner == host and pid.isdigit() and not Path(f"/proc/{pid}").exists()

    for c in client.containers.list(all=True, filters={"label": LAUNCHER_LABEL}):
        if dead(c.labels[LAUNCHER_LABEL]):
            c.remove(force=True)
    for n in client.networks.list(filters={"label": LAUNCHER_LABEL}):
        if dead(n.attrs["Labels"][LAUNCHER_LABEL]):
            n.remove()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    prepare_engine()
    client = docker.from_env(timeout=300)
    remove_dead_runs(client)
    tmp = tmp_path_factory.mktemp("docker-up")
    env = {"SUPERNODE_ADMIN_KEY": ADMIN_KEY, "VLLM_API_KEY": API_KEY}
    started = time.monotonic()
    handle = None
    try:
        with running_up(tmp, free_port("127.0.0.1"), "--runtime", "docker", "--build",
                        *SMALL_DECODE, ready_timeout_s=800, env=env) as up:
            run_id = re.search(r"network supernode-([0-9a-f]{8})", up.output()).group(1)
            handle = Run(up, client, run_id)
            print(f"docker runtime up in {time.monotonic() - started:.1f}s")
            yield handle
    finally:
        if handle is not None:
            handle.remove_leftovers()
        client.close()


def test_the_endpoint_streams_a_chat_completion_from_containers(run: Run) -> None:
    """The published endpoint (127.0.0.1 only) serves a streaming chat with the API key; every
    role is a container on the run's private network."""
    client = OpenAI(base_url=f"{run.up.url}/v1", api_key=API_KEY, max_retries=0, timeout=60)
    stream = client.chat.completions.create(
        model="deepseek-r1", messages=[{"role": "user", "content": "Hello from containers"}],
        max_tokens=16, stream=True, stream_options={"include_usage": True},
        extra_body={"ignore_eos": True})
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        usage = chunk.usage or usage
    assert len([p for p in pieces if p]) >= 2 and usage.completion_tokens == 16
    names = {c.labels["io.supernode.instance"] for c in run.containers()}
    assert names == {"redis", "scheduler", "ems", "prefill-0", "decode-0"}
    (network,) = run.networks()
    network.reload()
    bindings = run.container("scheduler").attrs["HostConfig"]["PortBindings"]["8000/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    assert {c.name for c in network.containers} >= {c.name for c in run.containers()}


def test_secrets_are_in_no_command_line_or_environment(run: Run) -> None:
    """The admin and API keys and the cluster token are files in the containers (0400, the
    image's user); none appears in a container's command or environment, nor in the image."""
    for c in run.containers():
        config = c.attrs["Config"]
        visible = " ".join([*(config.get("Env") or []), *(config.get("Cmd") or [])])
        assert ADMIN_KEY not in visible and API_KEY not in visible, c.name
    scheduler = run.container("scheduler")
    listing = scheduler.exec_run(["ls", "-ln", "/run/supernode"]).output.decode()
    assert re.search(r"^-r-------- 1 10001 10001 .* admin_key$", listing, re.M), listing
    token = scheduler.exec_run(["cat", "/run/supernode/cluster_token"]).output.decode()
    assert len(token) >= 32
    for c in run.containers():
        config = c.attrs["Config"]
        assert token not in " ".join([*(config.get("Env") or []), *(config.get("Cmd") or [])])
    history = " ".join(str(h) for h in run.client.images.get("supernode:0.1.0").history())
    assert ADMIN_KEY not in history and token not in history


def test_scale_decode_to_two_the_new_container_registers_and_serves(run: Run) -> None:
    """decode=2 starts container decode-1, which registers and takes requests; decode=1 then
    drains it away and removes its container."""
    r = run.up.cli("scale", "decode=2")
    assert r.returncode == 0 and "decode: 2 registered" in r.stdout, r.stdout + r.stderr
    assert run.container("decode-1").status == "running"
    assert workers(run.up, ADMIN_KEY)["decode-1"]["address"] == "decode-1:50051"
    served: set[str] = set()
    for _ in range(5):
        results = burst(run.up.url, 12, 16, API_KEY)
        assert all(x["status"] == 200 and x["tokens"] == 16 for x in results), results
        served |= {x["decode_worker"] for x in results}
        if served == {"decode-0", "decode-1"}:
            break
    assert served == {"decode-0", "decode-1"}
    r = run.up.cli("scale", "decode=1")
    assert r.returncode == 0 and "draining decode-1" in r.stdout, r.stdout + r.stderr
    wait_for(lambda: "decode-1" not in {c.labels["io.supernode.instance"]
                                        for c in run.containers()}, 60, "decode-1 removed")


def test_autoscale_scales_up_under_a_burst_and_back_down(run: Run, tmp_path: Path) -> None:
    """Against a bounded burst (64 requests on a decode with 32 slots) the autoscaler goes
    1 -> 3 containers on vllm:num_requests_waiting (target 4, read from the scheduler's
    /metrics with the admin key), then back to 1 after its 5 s scale-down window."""
    out = tmp_path / "autoscale.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [*CLI, "autoscale", "--url", run.up.url, "--target", "decode:waiting=4",
             "--max-decode", "3", "--interval", "1", "--scale-down-window", "5",
             "--scale-up-policy", "2/1", "--scale-down-policy", "2/1", "--duration", "240",
             "--json"], stdout=sink, stderr=subprocess.STDOUT, env=run.up.env,
            preexec_fn=ignore_sigint)
    try:
        wait_for(lambda: decisions(out), 60, "a first decision")
        results = burst(run.up.url, 64, 250, API_KEY)
        scaled = wait_for(lambda: [d for d in decisions(out) if d["outcome"] == "scaled"]
                          if any(d["outcome"] == "scaled" and d["desired"] == 1
                                 for d in decisions(out)) else None, 120, "a scale-down to 1")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    print(out.read_text())
    assert all(x["status"] == 200 and x["tokens"] == 250 for x in results)
    assert (scaled[0]["current"], scaled[0]["desired"]) == (1, 3), scaled
    assert scaled[0]["metrics"][0]["value"] > 4
    assert max(d["desired"] for d in decisions(out)) == 3
    assert scaled[-1]["desired"] == 1
    wait_for(lambda: sum(c.labels["io.supernode.role"] == "decode"
                         for c in run.containers()) == 1, 90, "one decode container left")


def test_faults_act_on_the_containers(run: Run) -> None:
    """`supernode fault` under the docker runtime: stall pauses the container (cgroup
    freezer) for its duration, disconnect takes it off the network and back, kill kills it
    (exit 137) and supervision starts it again, registered within seconds."""
    decode = run.container("decode-0")
    r = run.up.cli("fault", "stall", "decode-0", "--duration", "3")
    assert r.returncode == 0, r.stderr
    decode.reload()
    assert decode.status == "paused"
    wait_for(lambda: (decode.reload(), decode.status)[1] == "running", 30, "unpaused")
    network = f"supernode-{run.run_id}"
    r = run.up.cli("fault", "disconnect", "decode-0", "--duration", "3")
    assert r.returncode == 0, r.stderr
    decode.reload()
    assert network not in decode.attrs["NetworkSettings"]["Networks"]
    wait_for(lambda: network in (decode.reload(), decode.attrs)[1]["NetworkSettings"]["Networks"],
             30, "reconnected")
    pid = decode.attrs["State"]["Pid"]
    r = run.up.cli("fault", "kill", "decode-0")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: "decode-0 exited with 137" in run.up.output(), 30, "the kill reported")
    wait_for(lambda: (decode.reload(), decode.attrs["State"])[1]["Pid"] not in (0, pid)
             and decode.status == "running", 60, "decode-0 restarted")
    wait_for(lambda: httpx.get(f"{run.up.url}/health", timeout=5).json()["workers"]["decode"]
             == 1, 60, "decode-0 registered again")
    faults = run.up.cli("fault", "list")
    assert faults.returncode == 0 and '"runtime_faults": []' in faults.stdout, faults.stdout


def test_sigterm_stops_and_removes_every_container_and_the_network(run: Run) -> None:
    """`up` exits 0 on SIGTERM and leaves no container or network of its run."""
    run.up.proc.send_signal(signal.SIGTERM)
    assert run.up.proc.wait(timeout=120) == 0
    assert run.containers() == [] and run.networks() == []
