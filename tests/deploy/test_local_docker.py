"""scripts/local-docker ships with the repository (the README's offline Docker path uses it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "local-docker"


def test_the_script_is_in_the_repository_executable_and_parses() -> None:
    """It exists, is executable, and bash accepts its syntax."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    assert SCRIPT.is_file() and os.access(SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_docs_point_at_it_and_not_outside_the_clone() -> None:
    """README, the deploy guide and the compose files name scripts/local-docker; nothing
    refers to a path outside the repository."""
    for path in ("README.md", "docs/deploy.md", "docker-compose.yml",
                 "deploy/compose.offline.yml"):
        text = (ROOT / path).read_text()
        assert "scripts/local-docker" in text, path
        assert "../shared" not in text, path
