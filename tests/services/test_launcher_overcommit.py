"""`supernode up` refuses a deployment that does not fit in HBM unless told to overcommit."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from services.launcher import free_port
from services.up.cli import build_parser, resolve_config

TINY = ["--set", "decode.num_devices=2", "--set", "decode.dp=4", "--set", "decode.ep=4"]


def test_refuses_without_the_flag(capsys):
    """Without --allow-overcommit, resolving the config exits 2 naming the instance."""
    parser = build_parser()
    with pytest.raises(SystemExit) as exc:
        resolve_config(parser.parse_args(TINY), parser)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "does not fit in HBM" in err and "decode instance" in err and "--allow-overcommit" in err


def test_flag_and_config_key_both_allow_it():
    """--allow-overcommit, or allow_overcommit: true in the config, lets it through."""
    parser = build_parser()
    assert resolve_config(parser.parse_args(TINY + ["--allow-overcommit"]), parser).allow_overcommit
    config = resolve_config(parser.parse_args(TINY + ["--set", "allow_overcommit=true"]), parser)
    assert config.allow_overcommit


@pytest.mark.e2e
def test_up_runs_overcommitted_and_says_so_in_the_banner(tmp_path):
    """With the flag, `supernode up` starts the too-small deployment, its banner and every
    response's `supernode` object say it is overcommitted; without it, `up` exits non-zero
    before starting anything."""
    refused = subprocess.run([sys.executable, "-m", "supernode.cli.main", "up", *TINY],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "does not fit in HBM" in refused.stderr
    port = free_port("127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "supernode.cli.main", "up", *TINY, "--allow-overcommit",
         "--port", str(port), "--log-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("supernode is up:"), line
        assert "OVERCOMMITTED (--allow-overcommit)" in line and "decode instance" in line
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/completions", timeout=60, json={
            "model": "deepseek-r1", "prompt": "hello", "max_tokens": 4})
        assert reply.status_code == 200 and reply.json()["supernode"]["overcommitted"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
