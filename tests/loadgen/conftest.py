"""Fixtures: one scripted server process for the whole loadgen test session, stopped by handle,
and a guard that skips the timing-sensitive tests while the host is overloaded.

The timing tests assert tolerances of a few ms. On this shared 2-core machine a neighbour's
build can push the load average to 10, when a request's handling alone takes tens of ms and
no client-side measurement can be that tight; those tests then skip, saying what was measured,
rather than fail on the neighbour's account."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

MAX_PROBE_TTFT_S = 0.006
PROBE_WAIT_S = 10.0
PROBE_BODY = b'{"model": "m", "prompt": [1000], "max_tokens": 1, "stream": true}'

SERVER_SCRIPT = Path(__file__).with_name("scripted_server.py")
STARTUP_TIMEOUT_S = 30


@pytest.fixture(scope="session")
def scripted_base_url() -> Iterator[str]:
    """Base URL (http://127.0.0.1:PORT) of a running scripted server."""
    proc = subprocess.Popen([sys.executable, str(SERVER_SCRIPT)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"scripted server did not start: {line!r}")
        port = int(line.split()[1])
        _wait_ready(port)
        _warm_up(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _warm_up(port: int) -> None:
    """One streamed request, so the server's first-request costs stay out of every test."""
    body = b'{"model": "m", "prompt": [1000], "max_tokens": 2, "stream": true}'
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        resp.read()


@pytest.fixture(autouse=True)
def quiet_host(request) -> None:
    """For tests using the scripted server: wait up to PROBE_WAIT_S until a zero-delay
    streamed request gets its first chunk within MAX_PROBE_TTFT_S (median of 5), else skip
    with the measured figure."""
    if "scripted_base_url" not in request.fixturenames:
        return
    port = int(request.getfixturevalue("scripted_base_url").rsplit(":", 1)[1])
    deadline = time.monotonic() + PROBE_WAIT_S
    while True:
        ttft_s = sorted(_probe_ttft_s(port) for _ in range(5))[2]
        if ttft_s <= MAX_PROBE_TTFT_S:
            return
        if time.monotonic() > deadline:
            pytest.skip(
                f"host overloaded: a zero-delay request waits {ttft_s * 1e3:.1f} ms for its "
                f"first chunk (normally ~2 ms); timing tolerances cannot hold"
            )
        time.sleep(0.5)


def _probe_ttft_s(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        start = time.perf_counter()
        conn.request(
            "POST", "/v1/completions", body=PROBE_BODY, headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        resp.readline()
        elapsed_s = time.perf_counter() - start
        resp.read()
        return elapsed_s
    finally:
        conn.close()
