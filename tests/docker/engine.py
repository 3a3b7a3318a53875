"""A Docker engine for the docker tests: prepared by scripts/local-docker, or a skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL_DOCKER = ROOT / "scripts" / "local-docker"


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30,
                              check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def prepare_engine() -> None:
    """Run scripts/local-docker (installs the engine and the local python:3.11-slim stand-in
    where missing; needs root); skip the test only where no engine can be started at all,
    fail when the script failed although an engine answers."""
    if LOCAL_DOCKER.exists():
        prep = subprocess.run(["bash", str(LOCAL_DOCKER)], capture_output=True, text=True,
                              timeout=900, check=False)
        prep_out = (prep.stdout + prep.stderr).strip()
    else:
        prep, prep_out = None, f"{LOCAL_DOCKER} not found"
    if not engine_answers():
        pytest.skip(f"no Docker engine can be started on this machine: {prep_out[-800:]}")
    if prep is not None and prep.returncode != 0:
        pytest.fail(f"local-docker failed although an engine answers:\n{prep_out[-3000:]}")
