"""Real clusters for end-to-end tests: every role a separate process on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.credentials import Credentials
from services.launcher import Cluster, free_port
from supernode.config import load_config


def start_cluster(tmp: Path, credentials: Credentials | None = None,
                  **overrides: object) -> Cluster:
    """A ready cluster with config `overrides`; `credentials` as `supernode up` takes them
    (without a cluster token: a fresh one, so every e2e test runs the authenticated plane)."""
    config = load_config(None, {"ports.http": free_port("127.0.0.1"), **overrides})
    cluster = Cluster(config, tmp, "INFO", credentials)
    cluster.start()
    try:
        cluster.wait_ready(60.0)
    except Exception:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The embedded default deployment, shared by the read-only API tests."""
    c = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


@pytest.fixture(scope="session")
def base_url(cluster: Cluster) -> str:
    return f"{cluster.endpoint}/v1"
