"""Fixtures: one scripted server process for the whole loadgen test session, stopped by handle."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

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
