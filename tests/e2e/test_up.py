"""`supernode up` as a user runs it: prints the endpoint, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import openai
import pytest

from services.launcher import free_port

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
])
def test_up_rejects_bad_flags_naming_them(args: list[str], message: str) -> None:
    """Bad flags fail fast with exit 2 and a message that names the problem."""
    r = subprocess.run([sys.executable, "-m", "supernode.cli.main", "up", *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and message in r.stderr, r.stderr
