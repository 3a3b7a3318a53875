"""deploy/k8s: every manifest passes the Kubernetes schema, and the pieces fit together."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from supernode.config import ClusterConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The oldest version with GA native gRPC probes, and the newest schema the validator ships.
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
ROLES = ("scheduler", "prefill", "decode", "ems")


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def resources() -> list[tuple[str, dict[str, Any]]]:
    return [(f, d) for f, d in documents() if d["kind"] != "Kustomization"]


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in resources() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def container(role: str) -> dict[str, Any]:
    spec = find("Deployment", f"supernode-{role}")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    return c


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,doc", resources(),
                         ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in resources()])
def test_manifest_is_valid(name: str, doc: dict[str, Any], version: str) -> None:
    """Each manifest validates strictly against the oldest and the newest supported schema."""
    kubernetes_validate.validate(doc, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    """kustomization.yaml lists exactly the manifests on disk."""
    (kustomization,) = [d for _, d in documents() if d["kind"] == "Kustomization"]
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_everything_is_in_one_namespace() -> None:
    """Every namespaced resource lives in the `supernode` namespace."""
    for name, doc in resources():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "supernode", name


def test_pools_have_replicas_and_resource_requests() -> None:
    """Every role requests CPU and memory; the scheduler (in-memory registry) runs one replica,
    decode at least two."""
    for role in ROLES:
        deployment = find("Deployment", f"supernode-{role}")
        assert deployment["spec"]["replicas"] >= 1
        requests = container(role)["resources"]["requests"]
        assert {"cpu", "memory"} <= set(requests), role
    assert find("Deployment", "supernode-scheduler")["spec"]["replicas"] == 1  # registry in memory
    assert find("Deployment", "supernode-decode")["spec"]["replicas"] >= 2


def test_grpc_roles_use_native_grpc_readiness_probes() -> None:
    """gRPC roles use native gRPC readiness probes on 50051; the scheduler is ready on HTTP /ready
    (every pool has a live worker) and live on gRPC."""
    for role in ("prefill", "decode", "ems"):
        assert container(role)["readinessProbe"]["grpc"] == {"port": 50051}, role
    scheduler = container("scheduler")
    assert scheduler["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert scheduler["livenessProbe"]["grpc"] == {"port": 50051}


def test_role_commands_wire_the_services_together() -> None:
    """Role args name the scheduler, EMS and Redis Services on ports they expose; the scheduler's
    Service routes to not-ready pods."""
    services = {d["metadata"]["name"]: d for _, d in resources() if d["kind"] == "Service"}
    for role in ROLES:
        args = container(role)["args"]
        assert args[:2] == ["serve", role]
        if role != "scheduler":
            host, port = args[args.index("--scheduler") + 1].split(":")
            assert host == "supernode-scheduler"
            assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
    prefill = container("prefill")["args"]
    assert prefill[prefill.index("--ems") + 1] == "supernode-ems:50051"
    ems = container("ems")["args"]
    assert ems[ems.index("--redis-url") + 1] == "redis://supernode-redis:6379/0"
    assert "supernode-redis" in services
    # workers register before the scheduler is ready, so its Service must route to it anyway
    assert services["supernode-scheduler"]["spec"]["publishNotReadyAddresses"] is True


def test_services_select_their_pods() -> None:
    """Each Service selects exactly one Deployment, whose container names every targetPort."""
    for _, svc in resources():
        if svc["kind"] != "Service":
            continue
        selector = svc["spec"]["selector"]
        pods = [d for _, d in resources() if d["kind"] == "Deployment"
                and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(pods) == 1, svc["metadata"]["name"]
        ports = {p["name"] for p in pods[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, (svc["metadata"]["name"], port)


def test_workers_advertise_their_pod_ip_and_run_as_non_root() -> None:
    """Each role advertises its pod IP, reads the mounted config, and runs as non-root without
    privilege escalation."""
    for role in ROLES:
        c = container(role)
        env = {e["name"]: e for e in c["env"]}
        assert env["SUPERNODE_ADVERTISE_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] \
            == "status.podIP"
        assert env["SUPERNODE_CONFIG"]["value"] == "/etc/supernode/deployment.yaml"
        pod = find("Deployment", f"supernode-{role}")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_config_map_holds_a_loadable_deployment(tmp_path: Path) -> None:
    """The ConfigMap's deployment.yaml loads as a config whose cache is the in-cluster Redis."""
    data = find("ConfigMap", "supernode-config")["data"]["deployment.yaml"]
    path = tmp_path / "deployment.yaml"
    path.write_text(data)
    config = load_config(path)
    assert config.cache.backend == "redis"
    assert config.cache.redis_url == "redis://supernode-redis:6379/0"


def test_hpa_scales_decode_on_queue_depth() -> None:
    """The decode HPA (autoscaling/v2) scales on vllm:num_requests_waiting, which the adapter rules
    expose."""
    hpa = find("HorizontalPodAutoscaler", "supernode-decode")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "supernode-decode"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "vllm:num_requests_waiting"
    rules = find("ConfigMap", "supernode-prometheus-adapter-rules")["data"]["config.yaml"]
    assert "vllm:num_requests_waiting" in yaml.safe_load(rules)["rules"][0]["seriesQuery"]


def test_dashboards_config_map_is_up_to_date() -> None:
    """The dashboards ConfigMap holds exactly the Grafana JSON files, as render_dashboards.py writes
    it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_dashboards",
                                                  K8S / "render_dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run: python deploy/k8s/render_dashboards.py"
    config_map = find("ConfigMap", "supernode-grafana-dashboards")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = {p.name: p.read_text() for p in (ROOT / "deploy/grafana/dashboards").glob("*.json")}
    assert (config_map.get("data") or {}) == files
    size = sum(len(k) + len(v.encode()) for k, v in files.items())
    assert size < 1_000_000, f"dashboards ConfigMap is {size} bytes; the API limit is 1 MiB"


def test_worker_pods_have_time_to_drain() -> None:
    """terminationGracePeriodSeconds outlasts a worker's drain (drain_timeout_s)."""
    for role in ("prefill", "decode"):
        spec = find("Deployment", f"supernode-{role}")["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > ClusterConfig().drain_timeout_s, role


def secret_refs(role: str) -> dict[str, dict[str, Any]]:
    """env var name -> secretKeyRef, for the role's container."""
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(role)["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}


def test_every_role_takes_the_cluster_token_from_the_secret() -> None:
    """Each role binds 0.0.0.0 explicitly (the entry point defaults to loopback) and reads a
    required cluster token from the supernode-auth Secret; the scheduler may also read the admin
    and API keys from it."""
    for role in ROLES:
        env = {e["name"]: e for e in container(role)["env"]}
        assert env["SUPERNODE_BIND_HOST"]["value"] == "0.0.0.0", role
        refs = secret_refs(role)
        assert refs["SUPERNODE_CLUSTER_TOKEN"] == {"name": "supernode-auth",
                                                   "key": "cluster-token"}, role
    refs = secret_refs("scheduler")
    assert refs["SUPERNODE_ADMIN_KEY"] == {"name": "supernode-auth", "key": "admin-key",
                                           "optional": True}
    assert refs["VLLM_API_KEY"]["key"] == "api-key" and refs["VLLM_API_KEY"]["optional"]
    assert refs["SUPERNODE_API_KEYS"]["key"] == "api-keys"


def test_the_secret_is_generated_from_a_file_the_script_writes(tmp_path: Path) -> None:
    """kustomize generates supernode-auth (namespace supernode) from auth.env, git-ignored, and
    deploy/make-secrets.sh writes that file with every key a role requires."""
    (kustomization,) = [d for _, d in documents() if d["kind"] == "Kustomization"]
    (generator,) = kustomization["secretGenerator"]
    assert generator == {"name": "supernode-auth", "namespace": "supernode",
                         "envs": ["auth.env"]}
    assert "/deploy/k8s/auth.env" in (ROOT / ".gitignore").read_text().split()
    env_file = tmp_path / "auth.env"
    subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), str(tmp_path / "s"),
                    str(env_file)], check=True, capture_output=True)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    written = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    required = {ref["key"] for role in ROLES for ref in secret_refs(role).values()
                if not ref.get("optional")}
    assert required <= set(written) and all(len(v) == 64 for v in written.values())
    assert written["cluster-token"] == (tmp_path / "s" / "cluster_token").read_text()


def test_scheduler_is_not_scraped_by_annotation() -> None:
    """The scheduler's /metrics needs the admin key, which annotation-based scraping cannot
    send, so only the workers (open /metrics on 9400) carry prometheus.io annotations."""
    pod = find("Deployment", "supernode-scheduler")["spec"]["template"]["metadata"]
    assert "prometheus.io/scrape" not in pod.get("annotations", {})
    for role in ("prefill", "decode", "ems"):
        pod = find("Deployment", f"supernode-{role}")["spec"]["template"]["metadata"]
        assert pod["annotations"]["prometheus.io/port"] == "9400", role


def test_pods_pay_their_model_load_and_ems_can_cache_it(tmp_path: Path) -> None:
    """The ConfigMap models loads from OBS; EMS can hold both instances' images, whose payloads
    fit Redis's cap; decode pods know EMS, so a pod the HPA adds loads through it."""
    from supernode.cache.models import manifest_for
    from supernode.deployment import instance_deployment

    path = tmp_path / "deployment.yaml"
    path.write_text(find("ConfigMap", "supernode-config")["data"]["deployment.yaml"])
    config = load_config(path)
    assert config.model_load.source == "obs"
    images = [manifest_for(instance_deployment(config, role), config.model_load.version,
                           config.model_load.block_bytes).model_bytes
              for role in ("prefill", "decode")]
    assert sum(images) < config.cache.capacity_bytes
    redis = container("redis")["args"]
    maxmemory = int(redis[redis.index("--maxmemory") + 1].removesuffix("gb")) * 2**30
    assert sum(images) * config.kv_payload_scale < maxmemory / 4
    decode = container("decode")["args"]
    assert decode[decode.index("--ems") + 1] == "supernode-ems:50051"
