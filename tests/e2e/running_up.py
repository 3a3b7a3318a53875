"""`supernode up`, `scale` and `autoscale` as a user runs them: subprocesses of the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CLI = [sys.executable, "-m", "supernode.cli.main"]
SMALL_DECODE = ["--set", "decode.num_devices=16", "--set", "decode.dp=32", "--set",
                "decode.ep=32", "--set", "decode.max_num_seqs_per_die=1"]
"""A decode instance that runs at most 32 requests at once (16 devices, 32 dies, one request
per die): a burst of a few dozen requests queues on it, as vllm:num_requests_waiting shows."""


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    port: int
    out: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def cli(self, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args, "--url", self.url], capture_output=True, text=True,
                              timeout=timeout_s, env=self.env, check=False)


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@contextmanager
def running_up(tmp_path: Path, port: int, *flags: str, ready_timeout_s: float = 120,
               env: dict[str, str] | None = None) -> Iterator[Up]:
    """`supernode up --port PORT FLAGS...` until the block ends, then SIGTERM; its state file
    goes under tmp_path (XDG_RUNTIME_DIR), so parallel runs never meet. Exit status 0 is
    checked at the end."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), **(env or {})}
    out = tmp_path / "up.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([*CLI, "up", "--port", str(port), "--log-dir",
                                 str(tmp_path / "logs"), *flags], stdout=sink,
                                stderr=subprocess.STDOUT, env=env)
    up = Up(proc, port, out, env)
    try:
        wait_for(lambda: "supernode is up" in up.output() or proc.poll() is not None,
                 ready_timeout_s, "supernode is up")
        assert proc.poll() is None, up.output()
        yield up
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, up.output()[-3000:]


def workers(up: Up, admin_key: str | None = None) -> dict[str, dict[str, Any]]:
    headers = {"authorization": f"Bearer {admin_key}"} if admin_key else {}
    body = httpx.get(f"{up.url}/workers", headers=headers, timeout=5).json()
    return {w["worker_id"]: w for w in body}


async def _burst(url: str, n: int, max_tokens: int, api_key: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=300, headers={"authorization": f"Bearer {api_key}"}
                                 ) as client:
        async def one(i: int) -> dict[str, Any]:
            r = await client.post(f"{url}/v1/completions", json={
                "model": "deepseek-r1", "prompt": f"burst request {i}", "max_tokens": max_tokens,
                "ignore_eos": True})
            body = r.json()
            return {"status": r.status_code, **(body.get("supernode") or {}),
                    "tokens": (body.get("usage") or {}).get("completion_tokens")}

        return await asyncio.gather(*(one(i) for i in range(n)))


def burst(url: str, n: int, max_tokens: int, api_key: str = "unused") -> list[dict[str, Any]]:
    """`n` concurrent completions of `max_tokens` each; their status and supernode fields."""
    return asyncio.run(_burst(url, n, max_tokens, api_key))


def ignore_sigint() -> None:
    """A `preexec_fn` giving a child what a shell's background job inherits, SIGINT ignored:
    a CLI must still stop on Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def decisions(path: Path) -> list[dict[str, Any]]:
    """The JSON decisions `supernode autoscale --json` printed so far."""
    return [json.loads(line) for line in path.read_text().splitlines()
            if line.startswith("{")]
