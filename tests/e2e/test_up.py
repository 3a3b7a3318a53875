"""`supernode up` as a user runs it: prints the endpoint, serves, restarts what dies, fails
fast on a bad environment, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest

from services.launcher import Cluster, free_port
from supernode.config import load_config
from tests.e2e.running_up import wait_for

pytestmark = pytest.mark.e2e


def test_up_serves_and_stops_every_process_on_sigterm(tmp_path) -> None:
    """The printed endpoint streams a chat completion; SIGTERM stops all children (none keeps
    the port) and `up` exits 0."""
    port = free_port("127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "supernode.cli.main", "up", "--port", str(port),
         "--log-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("supernode is up:"), line
        assert f"http://127.0.0.1:{port}/v1" in line and "deepseek-r1" in line
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x",
                               max_retries=0)
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="deepseek-r1", messages=[{"role": "user", "content": "hi"}], max_tokens=5,
            stream=True, extra_body={"ignore_eos": True}) if c.choices)
        assert len(text.split()) == 5
        logs = sorted(p.name for p in tmp_path.glob("*.log"))
        assert logs == ["decode-0.log", "ems.log", "prefill-0.log", "scheduler.log"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


@pytest.mark.parametrize("args, message", [
    (["--num-decode", "0"], "num_prefill and num_decode"),
    (["--set", "decode.dp=7"], "dp"),
    (["--routing-policy", "fastest"], "least-loaded"),
    (["--set", "bogus=1"], "bogus"),
    (["--port", "99999"], "--port"),
    (["--port", "http"], "--port"),
])
def test_up_rejects_bad_flags_naming_them(args: list[str], message: str) -> None:
    """Bad flags fail fast with exit 2 and a message that names the problem."""
    r = subprocess.run([sys.executable, "-m", "supernode.cli.main", "up", *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and message in r.stderr, r.stderr


UP = [sys.executable, "-m", "supernode.cli.main", "up"]


def health(port: int) -> tuple[int, dict]:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
        return r.status_code, r.json()
    except httpx.HTTPError:
        return 0, {}


def test_up_restarts_a_killed_worker_and_health_is_degraded_meanwhile(tmp_path) -> None:
    """`up` prints every process's pid and metrics address; SIGKILL on a decode: /health turns
    503 naming the decode pool, the worker is restarted (reported, same metrics address) and
    registered again within seconds, and /health is 200 again."""
    port, out = free_port("127.0.0.1"), tmp_path / "up.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([*UP, "--port", str(port), "--num-decode", "2", "--log-dir",
                                 str(tmp_path / "logs")], stdout=sink, stderr=subprocess.STDOUT)
    try:
        text = wait_for(lambda: (t := out.read_text()).count(" metrics ") >= 5 and t, 90,
                        "the process table")
        rows = {name: (int(pid), url) for name, pid, url in
                re.findall(r"^  (\S+)\s+pid (\d+)\s+metrics (\S+)$", text, re.M)}
        assert set(rows) == {"scheduler", "ems", "prefill-0", "decode-0", "decode-1"}
        pid, metrics_url = rows["decode-0"]
        assert "vllm:num_requests_running" in httpx.get(metrics_url, timeout=5).text
        assert health(port)[0] == 200

        os.kill(pid, signal.SIGKILL)
        _, body = wait_for(lambda: (h := health(port))[0] == 503 and h, 20, "/health 503")
        assert body["status"] == "degraded" and body["degraded_pools"] == ["decode"]
        wait_for(lambda: health(port)[0] == 200, 30, "decode-0 back")
        text = out.read_text()
        assert "decode-0 was killed by SIGKILL; restarting in 0.5s (restart 1)" in text
        assert "decode-0 restarted (pid" in text
        workers = {w["worker_id"]: w for w in httpx.get(f"http://127.0.0.1:{port}/workers",
                                                         timeout=5).json()}
        assert f"http://{workers['decode-0']['metrics_address']}/metrics" == metrics_url
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


@contextmanager
def another_server() -> Iterator[int]:
    """An HTTP server that is not supernode but answers /health as if it were a healthy one."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "ok", "workers": {"prefill": 9, "decode": 9, "ems": 9}})
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port("127.0.0.1")), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_up_on_a_taken_port_exits_at_once_naming_the_cause() -> None:
    """With another server on the port, `up` exits 1 before starting anything, saying the
    port is in use; it never claims to be up."""
    with another_server() as port:
        started = time.monotonic()
        r = subprocess.run([*UP, "--port", str(port)], capture_output=True, text=True,
                           timeout=60)
    assert r.returncode == 1, r.stderr
    assert f"127.0.0.1:{port}" in r.stderr and "in use" in r.stderr
    assert "supernode is up" not in r.stdout
    assert time.monotonic() - started < 30


def test_readiness_is_only_our_own_scheduler(tmp_path: Path) -> None:
    """A server on the HTTP port that reports healthy pools does not count as ready: the
    launcher waits for its own scheduler (by instance id), sees it die on the taken port, and
    reports that with the log line naming the cause."""
    with another_server() as port:
        cluster = Cluster(load_config(None, {"ports.http": port}), tmp_path, "INFO")
        cluster.start()
        try:
            with pytest.raises(RuntimeError) as e:
                cluster.wait_ready(60)
        finally:
            cluster.stop(grace_s=0.0)
    assert "scheduler exited with 1" in str(e.value)
    assert f"cannot listen for the OpenAI HTTP endpoint on 127.0.0.1:{port}" in str(e.value)


def test_up_refuses_an_unreachable_redis() -> None:
    """`--redis-url` pointing nowhere: exit 1 at start-up naming the URL, nothing started."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    r = subprocess.run([*UP, "--port", str(free_port("127.0.0.1")), "--redis-url", url],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"cannot reach Redis at {url}" in r.stderr
