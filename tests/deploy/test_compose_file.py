"""docker-compose.yml and its offline override, read as data: the rules a scaled stack needs."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from supernode.config import ClusterConfig

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
    """The stack is exactly the four roles plus Redis, Prometheus and Grafana, nothing more."""
    assert set(services) == EXPECTED


def test_every_service_has_a_healthcheck(services: dict) -> None:
    """Every service has a CMD or CMD-SHELL healthcheck with an interval, a timeout and retries."""
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name} healthcheck lacks {key}"


def test_grpc_roles_probe_the_grpc_health_service(services: dict) -> None:
    """gRPC roles are probed through the gRPC health service, the scheduler on HTTP /ready
    (serving: every pool has a live worker; /health's `degraded` is for alerting)."""
    for role in ("prefill", "decode", "ems"):
        test = services[role]["healthcheck"]["test"]
        assert test[1:5] == ["python", "-m", "services.healthcheck", "grpc"], (role, test)
    scheduler = services["scheduler"]["healthcheck"]["test"]
    assert scheduler[-1].endswith("/ready")


def test_depends_on_uses_conditions(services: dict) -> None:
    """depends_on is the long form with a known condition; EMS waits for a healthy Redis, prefill
    for a healthy EMS, Grafana for a healthy Prometheus."""
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
    """depends_on forms no cycle, so compose can order every service's start."""
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
    """Scaled roles fix no container name, hostname or host port, so replicas cannot collide."""
    for role in SCALED:
        svc = services[role]
        assert "container_name" not in svc, role
        assert "ports" not in svc, role
        assert "hostname" not in svc, role  # each replica advertises its own hostname


def test_published_ports_are_loopback_only(services: dict) -> None:
    """Every published port binds 127.0.0.1 only; the scheduler's and Grafana's are set by env."""
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert services["scheduler"]["ports"] == ["127.0.0.1:${SUPERNODE_HTTP_PORT:-8000}:8000"]
    assert services["grafana"]["ports"] == ["127.0.0.1:${GRAFANA_PORT:-3000}:3000"]


def test_images_are_pinned(services: dict) -> None:
    """Every image carries a version tag, never `latest` or none."""
    for name, svc in services.items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)
        tag = image.rsplit(":", 1)[1]
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} is not a version"


def test_roles_share_one_image_built_from_the_dockerfile(services: dict) -> None:
    """All four roles run one image, built from deploy/Dockerfile, each as `serve <role>`."""
    images = {services[r]["image"] for r in ROLES}
    assert len(images) == 1
    for role in ROLES:
        assert services[role]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
        assert services[role]["command"][:2] == ["serve", role]
    assert (ROOT / "deploy" / "Dockerfile").is_file()


def test_workers_find_the_scheduler_and_ems_by_service_name(services: dict) -> None:
    """Roles reach the scheduler, EMS and Redis by service name; Redis accepts remote clients and
    never evicts (EMS runs the LRU)."""
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
    """Every ${VAR:-default} is documented in the file's header, and every role takes
    SUPERNODE_SPEEDUP."""
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
    """State is kept in named volumes; any other mount is a bind mount from the repository."""
    named = set(compose["volumes"])
    assert {"prometheus-data", "grafana-data", "redis-data"} <= named
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith("./") or source in named, (name, volume)


def test_observability_mounts(services: dict) -> None:
    """Prometheus and Grafana take their config, provisioning and dashboards read-only from deploy/.
    """
    prom = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus/supernode:ro" in prom["volumes"]
    assert any("prometheus.yml" in arg for arg in prom["command"])
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana


def test_offline_override_builds_redis_and_prometheus_and_drops_grafana(services: dict) -> None:
    """Offline, Redis and Prometheus are built from the base image with apt and Grafana sits behind
    a profile."""
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
    """The Dockerfile installs dependencies before copying the code (layer cache), runs as UID
    10001, and .dockerignore is a non-empty allow-list."""
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "FROM ${PYTHON_IMAGE}" in text and "ARG PYTHON_IMAGE=python:3.11-slim" in text
    # dependencies are installed before the code is copied in
    assert text.index("COPY pyproject.toml") < text.index("-r /tmp/requirements.txt") \
        < text.index("COPY supernode")
    assert re.search(r"^USER 10001", text, re.MULTILINE)
    assert 'ENTRYPOINT ["supernode-entrypoint"]' in text
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:], "the .dockerignore allow-list is empty"


def test_stopped_workers_have_time_to_drain(services: dict) -> None:
    """A stopped prefill or decode drains for up to drain_timeout_s before its requests fail
    over; compose's grace period before SIGKILL must be longer."""
    for role in SCALED:
        grace = services[role]["stop_grace_period"]
        seconds = float(re.fullmatch(r"(\d+)s", grace).group(1))
        assert seconds > ClusterConfig().drain_timeout_s, (role, grace)


def test_roles_bind_all_interfaces_only_with_the_cluster_token(services: dict) -> None:
    """Every role asks for 0.0.0.0 explicitly (the entry point defaults to loopback) and reads
    the cluster token from the `cluster_token` secret, as a file, never as a value."""
    for role in ROLES:
        env, secrets = services[role]["environment"], services[role]["secrets"]
        assert env["SUPERNODE_BIND_HOST"] == "0.0.0.0", role
        assert "cluster_token" in secrets, role
        assert env["SUPERNODE_CLUSTER_TOKEN_FILE"] == "/run/secrets/cluster_token", role
        assert "SUPERNODE_CLUSTER_TOKEN" not in env, role


def test_scheduler_and_prometheus_share_the_admin_key(services: dict) -> None:
    """The scheduler reads the admin key from the `admin_key` secret; Prometheus mounts the same
    secret and sends it as a Bearer token for the scheduler's /metrics and /sd/targets."""
    scheduler = services["scheduler"]
    assert "admin_key" in scheduler["secrets"]
    assert scheduler["environment"]["SUPERNODE_ADMIN_KEY_FILE"] == "/run/secrets/admin_key"
    assert scheduler["environment"]["VLLM_API_KEY"] == "${VLLM_API_KEY:-}"
    assert services["prometheus"]["secrets"] == ["admin_key"]
    config = load(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    want = {"type": "Bearer", "credentials_file": "/run/secrets/admin_key"}
    assert jobs["supernode-scheduler"]["authorization"] == want
    (sd,) = jobs["supernode-workers"]["http_sd_configs"]
    assert sd["authorization"] == want
    assert "authorization" not in jobs["supernode-workers"]  # workers' /metrics need no key


def test_secret_files_are_made_by_the_script(compose: dict, tmp_path: Path) -> None:
    """Compose reads each secret from SUPERNODE_SECRETS_DIR, and deploy/make-secrets.sh makes
    exactly those files there (random, private directory, readable by the containers' users),
    keeping them on a second run; the secrets are git-ignored."""
    names = {name: spec["file"] for name, spec in compose["secrets"].items()}
    assert names == {name: f"${{SUPERNODE_SECRETS_DIR:-./deploy/secrets}}/{name}"
                     for name in ("cluster_token", "admin_key")}
    out, k8s_env = tmp_path / "secrets", tmp_path / "auth.env"
    subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), str(out), str(k8s_env)],
                   check=True, capture_output=True)
    values = {name: (out / name).read_text() for name in names}
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in values.values()), values
    assert values["cluster_token"] != values["admin_key"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(stat.S_IMODE((out / n).stat().st_mode) == 0o644 for n in names)
    subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), str(out), str(k8s_env)],
                   check=True, capture_output=True)
    assert {name: (out / name).read_text() for name in names} == values
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "/deploy/secrets/" in ignored and "/deploy/k8s/auth.env" in ignored


def test_every_replica_pays_its_model_load(services: dict) -> None:
    """SUPERNODE_MODEL_LOAD reaches every role (default skip), and decode, like prefill, knows
    EMS, which picks and paces the load of each replica `--scale` adds."""
    for role in ROLES:
        assert services[role]["environment"]["SUPERNODE_MODEL_LOAD"] == \
            "${SUPERNODE_MODEL_LOAD:-skip}"
    decode = services["decode"]["command"]
    assert decode[decode.index("--ems") + 1] == "ems:50051"
    assert services["decode"]["depends_on"]["ems"] == {"condition": "service_healthy"}
