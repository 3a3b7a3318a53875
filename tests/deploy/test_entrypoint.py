"""deploy/entrypoint.sh: the environment becomes flags for service roles, nothing else changes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX sh")


def run(args: list[str], env: dict[str, str], tmp_path: Path) -> list[str]:
    """The argv the entry point hands to `supernode` (a stand-in that prints it)."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "supernode").write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    (fake / "supernode").chmod(0o755)
    (fake / "hostname").write_text("#!/bin/sh\necho c0ffee123456\n")
    (fake / "hostname").chmod(0o755)
    base = {"PATH": f"{fake}:{os.environ['PATH']}"}
    out = subprocess.run(["sh", str(ENTRYPOINT), *args], env={**base, **env},
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_serve_binds_loopback_unless_asked(tmp_path: Path) -> None:
    """With no environment, `serve` binds loopback (nothing is exposed unless asked) and
    advertises the container's hostname; SUPERNODE_BIND_HOST asks for another address."""
    argv = run(["serve", "decode", "--port", "50051"], {}, tmp_path)
    assert argv == ["serve", "decode", "--host", "127.0.0.1", "--advertise-host",
                    "c0ffee123456", "--port", "50051"]
    argv = run(["serve", "decode"], {"SUPERNODE_BIND_HOST": "0.0.0.0"}, tmp_path)
    assert argv[2:4] == ["--host", "0.0.0.0"]


def test_secrets_never_reach_the_command_line(tmp_path: Path) -> None:
    """The cluster token, API and admin keys stay in the environment (the process reads them
    itself), so they never show in the process list."""
    env = {"SUPERNODE_CLUSTER_TOKEN": "tok-s3cret", "SUPERNODE_ADMIN_KEY": "adm-s3cret",
           "VLLM_API_KEY": "key-s3cret", "SUPERNODE_CLUSTER_TOKEN_FILE": "/run/secrets/t"}
    argv = run(["serve", "scheduler"], env, tmp_path)
    assert not [a for a in argv if "s3cret" in a or "/run/secrets" in a], argv


def test_environment_becomes_flags_before_the_commands_own(tmp_path: Path) -> None:
    """SUPERNODE_* variables become flags ahead of the command's own (so explicit flags win), empty
    ones are dropped, SUPERNODE_ARGS comes last."""
    env = {"SUPERNODE_ADVERTISE_HOST": "10.0.0.7", "SUPERNODE_SPEEDUP": "0.5",
           "SUPERNODE_MODEL": "deepseek-r1", "SUPERNODE_SERVED_MODEL_NAME": "",
           "SUPERNODE_CONFIG": "/etc/supernode/deployment.yaml", "SUPERNODE_LOG_LEVEL": "DEBUG",
           "SUPERNODE_NUM_DECODE": "3", "SUPERNODE_NUM_PREFILL": "",
           "SUPERNODE_ARGS": "--set cache.block_size=256 --set decode.mtp_tokens=0"}
    argv = run(["serve", "prefill", "--set", "speedup=2"], env, tmp_path)
    assert argv == ["serve", "prefill", "--host", "127.0.0.1", "--advertise-host", "10.0.0.7",
                    "--config", "/etc/supernode/deployment.yaml", "--log-level", "DEBUG",
                    "--set", "speedup=0.5", "--set", "model=deepseek-r1",
                    "--set", "num_decode=3", "--set", "speedup=2",
                    "--set", "cache.block_size=256", "--set", "decode.mtp_tokens=0"]


def test_other_commands_pass_through_unchanged(tmp_path: Path) -> None:
    """Commands other than `serve` get their argv untouched; the environment adds nothing."""
    env = {"SUPERNODE_SPEEDUP": "0.5", "SUPERNODE_ARGS": "--x"}
    assert run(["bench", "--base-url", "http://a b"], env, tmp_path) == [
        "bench", "--base-url", "http://a b"]
    assert run(["--help"], env, tmp_path) == ["--help"]


def test_model_load_comes_from_the_environment(tmp_path: Path) -> None:
    """SUPERNODE_MODEL_LOAD sets where every replica loads its weights from."""
    argv = run(["serve", "decode"], {"SUPERNODE_ADVERTISE_HOST": "h",
                                     "SUPERNODE_MODEL_LOAD": "obs"}, tmp_path)
    assert argv[-2:] == ["--set", "model_load.source=obs"]
