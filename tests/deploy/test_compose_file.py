"""docker-compose.yml and its offline override, read as data: the rules a scaled stack needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
OFFLINE = ROOT / "deploy" / "compose.offline.yml"
ROLES = ("scheduler", "prefill", "decode", "ems")
SCALED = ("prefill", "decode")
EXPECTED = {*ROLES, "redis", "prometheus", "grafana"}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def test_every_role_and_the_infrastructure_are_services(services: dict) -> None:
    assert set(services) == EXPECTED


def test_every_service_has_a_healthcheck(services: dict) -> None:
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name} healthcheck lacks {key}"


def test_grpc_roles_probe_the_grpc_health_service(services: dict) -> None:
    for role in ("prefill", "decode", "ems"):
        test = services[role]["healthcheck"]["test"]
        assert test[1:5] == ["python", "-m", "services.healthcheck", "grpc"], (role, test)
    scheduler = services["scheduler"]["healthcheck"]["test"]
    assert scheduler[-1].endswith("/health")


def test_depends_on_uses_conditions(services: dict) -> None:
    allowed = {"service_healthy", "service_started", "service_completed_successfully"}
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must be the long form with conditions"
        for dep, spec in deps.items():
            assert dep in services, (name, dep)
            assert spec.get("condition") in allowed, (name, dep, spec)
    # the chain that matters: EMS waits for a healthy Redis, prefill for a healthy EMS
    assert services["ems"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["prefill"]["depends_on"]["ems"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_dependencies_have_no_cycle(services: dict) -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in services[name].get("depends_on", {}):
            visit(dep, (*path, name))
        done.add(name)

    for name in services:
        visit(name, ())


def test_scaled_roles_have_no_fixed_names_or_host_ports(services: dict) -> None:
    for role in SCALED:
        svc = services[role]
        assert "container_name" not in svc, role
        assert "ports" not in svc, role
        assert "hostname" not in svc, role  # each replica advertises its own hostname


def test_published_ports_are_loopback_only(services: dict) -> None:
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert services["scheduler"]["ports"] == ["127.0.0.1:${SUPERNODE_HTTP_PORT:-8000}:8000"]
    assert services["grafana"]["ports"] == ["127.0.0.1:${GRAFANA_PORT:-3000}:3000"]


def test_images_are_pinned(services: dict) -> None:
    for name, svc in services.items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)
        tag = image.rsplit(":", 1)[1]
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} is not a version"


def test_roles_share_one_image_built_from_the_dockerfile(services: dict) -> None:
    images = {services[r]["image"] for r in ROLES}
    assert len(images) == 1
    for role in ROLES:
        assert services[role]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
        assert services[role]["command"][:2] == ["serve", role]
    assert (ROOT / "deploy" / "Dockerfile").is_file()


def test_workers_find_the_scheduler_and_ems_by_service_name(services: dict) -> None:
    for role in ("prefill", "decode", "ems"):
        cmd = services[role]["command"]
        assert cmd[cmd.index("--scheduler") + 1] == "scheduler:50051"
    prefill = services["prefill"]["command"]
    assert prefill[prefill.index("--ems") + 1] == "ems:50051"
    ems = services["ems"]["command"]
    assert ems[ems.index("--redis-url") + 1] == "redis://redis:6379/0"
    # reachable from the EMS container whichever Redis build runs (Debian's has protected mode)
    redis = services["redis"]["command"]
    assert redis[redis.index("--protected-mode") + 1] == "no"
    assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction"  # EMS does the LRU


def test_configuration_by_environment_with_documented_defaults(services: dict) -> None:
    text = COMPOSE.read_text()
    header = text.split("services:", 1)[0]
    variables = set(re.findall(r"\$\{(\w+):-", text))
    assert {"SUPERNODE_SPEEDUP", "SUPERNODE_MODEL", "SUPERNODE_HTTP_PORT"} <= variables
    for var in variables:
        assert f"#   {var}" in header, f"{var} is not documented in the header"
    for role in ROLES:
        env = services[role]["environment"]
        assert env["SUPERNODE_SPEEDUP"] == "${SUPERNODE_SPEEDUP:-1.0}"


def test_state_lives_in_named_volumes(compose: dict, services: dict) -> None:
    named = set(compose["volumes"])
    assert {"prometheus-data", "grafana-data", "redis-data"} <= named
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith("./") or source in named, (name, volume)


def test_observability_mounts(services: dict) -> None:
    prom = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus/supernode:ro" in prom["volumes"]
    assert any("prometheus.yml" in arg for arg in prom["command"])
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana


def test_offline_override_builds_redis_and_prometheus_and_drops_grafana(services: dict) -> None:
    override = load(OFFLINE)["services"]
    assert set(override) == {"redis", "prometheus", "grafana"}
    for name in ("redis", "prometheus"):
        build = override[name]["build"]
        dockerfile = ROOT / build["context"] / build["dockerfile"]
        assert dockerfile.is_file(), dockerfile
        assert "FROM ${BASE_IMAGE}" in dockerfile.read_text()
        assert "apt-get install" in dockerfile.read_text()
        assert override[name]["image"] != services[name]["image"]
    assert override["grafana"]["profiles"], "grafana must be behind a profile offline"


def test_dockerfile_is_cacheable_and_non_root() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "FROM ${PYTHON_IMAGE}" in text and "ARG PYTHON_IMAGE=python:3.11-slim" in text
    # dependencies are installed before the code is copied in
    assert text.index("COPY pyproject.toml") < text.index("-r /tmp/requirements.txt") \
        < text.index("COPY supernode")
    assert re.search(r"^USER 10001", text, re.MULTILINE)
    assert 'ENTRYPOINT ["supernode-entrypoint"]' in text
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:], "the .dockerignore allow-list is empty"
