"""Without a Docker engine, `--runtime docker` says so and how to get one, and starts nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.launcher import free_port
from services.runtime import RUNTIMES, make_runtime
from services.runtime.base import RuntimeOptions, RuntimeUnavailable
from services.runtime.engine import connect
from supernode.config import load_config


def test_no_engine_is_runtime_unavailable_with_the_way_to_get_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(RuntimeUnavailable) as e:
        connect(timeout_s=5)
    message = str(e.value)
    assert f"no Docker engine answers at unix://{tmp_path}/no-such.sock" in message
    assert "scripts/local-docker" in message
    with pytest.raises(RuntimeUnavailable):
        make_runtime("docker", RuntimeOptions(load_config(), tmp_path))


def test_up_without_an_engine_exits_1_saying_why(tmp_path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-such.sock",
           "XDG_RUNTIME_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "supernode.cli.main", "up", "--runtime", "docker",
                        "--port", str(free_port("127.0.0.1")), "--log-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1 and "no Docker engine answers" in r.stderr, r.stderr
    assert "supernode is up" not in r.stdout


def test_runtimes_are_chosen_by_name() -> None:
    """The table holds both; `up --runtime` offers exactly its names."""
    assert set(RUNTIMES) == {"process", "docker"}
    with pytest.raises(KeyError):
        make_runtime("podman", RuntimeOptions(load_config(), "/tmp"))  # type: ignore[arg-type]


def test_docker_refuses_a_redis_url_naming_the_flag(capsys) -> None:
    from services.up.cli import build_parser, resolve_config

    parser = build_parser()
    with pytest.raises(SystemExit) as e:
        resolve_config(parser.parse_args(["--runtime", "docker", "--redis-url",
                                          "redis://127.0.0.1:1/0"]), parser)
    assert e.value.code == 2 and "--redis-url" in capsys.readouterr().err
