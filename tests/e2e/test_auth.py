"""Authentication through a real cluster: API keys with the `openai` client, tenants' cache
namespaces seen through `cached_tokens`, the admin key on the operator routes, and a gRPC
plane that refuses callers without the cluster token and impostors with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import openai
import pytest

from services.common.credentials import Credentials
from services.launcher import Cluster, free_port
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc
from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e
MODEL = "deepseek-r1"
BLOCK = 128
KEY, KEY_A, KEY_B, ADMIN = "sk-shared-k", "sk-tenant-a", "sk-tenant-b", "sk-operator"
CREDENTIALS = Credentials(api_keys=((KEY, ""), (KEY_A, "team-a"), (KEY_B, "team-b")),
                          admin_key=ADMIN)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("auth-cluster"), CREDENTIALS)
    yield c
    c.stop()


def client(cluster: Cluster, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cluster.endpoint}/v1", api_key=key, max_retries=0,
                         timeout=60)


def prompt(seed: int, num_blocks: int = 4) -> list[int]:
    return [1000 + (seed * 7919 + i) % 100_000 for i in range(num_blocks * BLOCK + 7)]


def cached_tokens(cluster: Cluster, key: str, tokens: list[int],
                  namespace: str | None = None) -> int:
    headers = {"x-supernode-namespace": namespace} if namespace is not None else None
    response = client(cluster, key).completions.create(
        model=MODEL, prompt=tokens, max_tokens=2, extra_body={"ignore_eos": True},
        extra_headers=headers)
    return response.usage.prompt_tokens_details.cached_tokens


def test_api_key_is_required_on_v1(cluster: Cluster) -> None:
    """Without a key or with a wrong one: 401 (the openai client raises AuthenticationError);
    with the key: a completion and a streamed chat completion."""
    response = httpx.post(f"{cluster.endpoint}/v1/completions", timeout=10,
                          json={"model": MODEL, "prompt": "hi", "max_tokens": 2})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "AuthenticationError"
    with pytest.raises(openai.AuthenticationError):
        client(cluster, "sk-wrong").completions.create(model=MODEL, prompt="hi", max_tokens=2)
    done = client(cluster, KEY).completions.create(model=MODEL, prompt="hi", max_tokens=3,
                                                   extra_body={"ignore_eos": True})
    assert done.usage.completion_tokens == 3
    stream = client(cluster, KEY).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True,
        extra_body={"ignore_eos": True})
    assert [c.choices[0].finish_reason for c in stream if c.choices][-1] == "length"


def test_tenants_do_not_share_cached_prefixes(cluster: Cluster) -> None:
    """A prefix tenant A cached is a miss for tenant B and for the default tenant."""
    tokens = prompt(seed=11)
    assert cached_tokens(cluster, KEY_A, tokens) == 0
    assert cached_tokens(cluster, KEY_A, tokens) == 4 * BLOCK  # A's own repeat hits
    assert cached_tokens(cluster, KEY_B, tokens) == 0
    assert cached_tokens(cluster, KEY, tokens) == 0


def test_only_the_admin_key_picks_a_namespace_by_header(cluster: Cluster) -> None:
    """Tenant A naming B's namespace in the header still uses A's (a miss on B's cached
    prefix); the admin key with the same header reaches B's namespace (a hit)."""
    tokens = prompt(seed=12)
    assert cached_tokens(cluster, KEY_B, tokens) == 0
    assert cached_tokens(cluster, KEY_B, tokens) == 4 * BLOCK
    assert cached_tokens(cluster, KEY_A, tokens, namespace="team-b") == 0
    assert cached_tokens(cluster, ADMIN, tokens, namespace="team-b") == 4 * BLOCK


def test_operator_routes_need_the_admin_key(cluster: Cluster) -> None:
    """/workers, /sd/targets, /metrics and /admin/faults: 401 without a key, 403 with a
    tenant's, 200 with the admin key; /health and /ready stay open."""
    for path in ("/workers", "/sd/targets", "/metrics", "/admin/faults"):
        url = f"{cluster.endpoint}{path}"
        assert httpx.get(url, timeout=5).status_code == 401, path
        assert httpx.get(url, headers={"authorization": f"Bearer {KEY_A}"},
                         timeout=5).status_code == 403, path
        assert httpx.get(url, headers={"authorization": f"Bearer {ADMIN}"},
                         timeout=5).status_code == 200, path
    assert httpx.get(f"{cluster.endpoint}/health", timeout=5).status_code == 200
    assert httpx.get(f"{cluster.endpoint}/ready", timeout=5).status_code == 200


def fault_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERNODE_")}
    return subprocess.run([sys.executable, "-m", "supernode.cli.main", "fault", "--url",
                           cluster.endpoint, *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_fault_injection_needs_the_admin_key(cluster: Cluster) -> None:
    """`supernode fault` without a key or with a tenant's is refused (exit 1, HTTP 401 / 403)
    and injects nothing; with the admin key the fault is injected, and a request fails with
    it."""
    refused = fault_cli(cluster, "fail-requests", "--status", "503")
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr, refused.stderr
    refused = fault_cli(cluster, "fail-requests", "--status", "503", "--admin-key", KEY_A)
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr, refused.stderr
    listed = fault_cli(cluster, "list", "--admin-key", ADMIN)
    assert listed.returncode == 0 and '"faults": []' in listed.stdout, listed.stderr
    injected = fault_cli(cluster, "fail-requests", "--status", "503", "--admin-key", ADMIN)
    assert injected.returncode == 0, injected.stderr
    with pytest.raises(openai.InternalServerError):
        client(cluster, KEY).completions.create(model=MODEL, prompt="x", max_tokens=2)
    assert client(cluster, KEY).completions.create(model=MODEL, prompt="x", max_tokens=2)


def test_a_worker_cannot_be_deregistered_without_its_lease_token(cluster: Cluster) -> None:
    """With the cluster token, a Deregister naming prefill-0 and its address but not its lease
    token is answered `found = false`: the worker stays routed and serves."""
    admin = {"authorization": f"Bearer {ADMIN}"}
    workers = httpx.get(f"{cluster.endpoint}/workers", timeout=5, headers=admin).json()
    real = {w["worker_id"]: w["address"] for w in workers}["prefill-0"]
    metadata = (("authorization", f"Bearer {cluster.credentials.cluster_token}"),)
    with grpc.insecure_channel(cluster.scheduler_grpc) as channel:
        stub = pb_grpc.RegistryServiceStub(channel)
        for drain in (True, False):
            reply = stub.Deregister(pb.DeregisterRequest(
                worker_id="prefill-0", address=real, drain=drain, lease_token="forged"),
                metadata=metadata, timeout=5)
            assert not reply.found
    workers = httpx.get(f"{cluster.endpoint}/workers", timeout=5, headers=admin).json()
    (prefill,) = [w for w in workers if w["worker_id"] == "prefill-0"]
    assert prefill["address"] == real and not prefill["draining"]
    done = client(cluster, KEY).completions.create(model=MODEL, prompt="mine", max_tokens=2)
    assert done.model_extra["supernode"]["prefill_worker"] == "prefill-0"


def register(cluster: Cluster, request: pb.RegisterRequest, token: str | None) -> None:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(cluster.scheduler_grpc) as channel:
        pb_grpc.RegistryServiceStub(channel).Register(request, metadata=metadata, timeout=5)


def test_grpc_plane_refuses_strangers_and_impostors(cluster: Cluster) -> None:
    """Register without the cluster token: UNAUTHENTICATED. With it, claiming the live
    prefill-0's id from another address: ALREADY_EXISTS; the registry keeps the real worker's
    address and requests keep being served by it."""
    workers = httpx.get(f"{cluster.endpoint}/workers", timeout=5,
                        headers={"authorization": f"Bearer {ADMIN}"}).json()
    real = {w["worker_id"]: w["address"] for w in workers}["prefill-0"]
    impostor = pb.RegisterRequest(worker_id="prefill-0", kind=pb.WORKER_KIND_PREFILL,
                                  address=f"127.0.0.1:{free_port('127.0.0.1')}")
    for token in (None, "not-the-token"):
        with pytest.raises(grpc.RpcError) as e:
            register(cluster, impostor, token)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as e:
        register(cluster, impostor, cluster.credentials.cluster_token)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS  # type: ignore[attr-defined]
    workers = httpx.get(f"{cluster.endpoint}/workers", timeout=5,
                        headers={"authorization": f"Bearer {ADMIN}"}).json()
    assert {w["worker_id"]: w["address"] for w in workers}["prefill-0"] == real
    done = client(cluster, KEY).completions.create(model=MODEL, prompt="still me",
                                                   max_tokens=2)
    assert done.model_extra["supernode"]["prefill_worker"] == "prefill-0"


def test_workers_refuse_calls_without_the_token(cluster: Cluster) -> None:
    """Every worker's gRPC server (prefill, decode, EMS) answers UNAUTHENTICATED to a call
    without the token, while its health service answers anyone."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    workers = httpx.get(f"{cluster.endpoint}/workers", timeout=5,
                        headers={"authorization": f"Bearer {ADMIN}"}).json()
    calls = {"prefill": lambda ch: pb_grpc.PrefillServiceStub(ch).Abort(
                 pb.AbortRequest(request_id="x"), timeout=5),
             "decode": lambda ch: pb_grpc.DecodeServiceStub(ch).Abort(
                 pb.AbortRequest(request_id="x"), timeout=5),
             "ems": lambda ch: pb_grpc.EmsServiceStub(ch).Stats(pb.StatsRequest(), timeout=5)}
    assert sorted(w["kind"] for w in workers) == sorted(calls)
    for w in workers:
        with grpc.insecure_channel(w["address"]) as channel:
            with pytest.raises(grpc.RpcError) as e:
                calls[w["kind"]](channel)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, w  # type: ignore[attr-defined]
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_supernode_up_takes_keys_from_flags_and_environment(tmp_path: Path) -> None:
    """`supernode up --api-key K` with SUPERNODE_ADMIN_KEY set: /v1/* needs K (401 without or
    with a wrong key, a streamed chat completion with it), the operator routes the admin key;
    neither key is written to the config file or the logs."""
    port = free_port("127.0.0.1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPERNODE_", "VLLM_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "supernode.cli.main", "up", "--port", str(port), "--api-key",
         KEY, "--log-dir", str(tmp_path)], env={**env, "SUPERNODE_ADMIN_KEY": ADMIN},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("supernode is up:"), line
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/v1/models", timeout=5).status_code == 401
        wrong = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        right = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=60)
        chunks = right.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3,
            stream=True, extra_body={"ignore_eos": True})
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
        assert httpx.get(f"{base}/workers", timeout=5).status_code == 401
        assert httpx.get(f"{base}/workers", headers={"authorization": f"Bearer {ADMIN}"},
                         timeout=5).status_code == 200
        on_disk = " ".join(p.read_text(errors="replace") for p in tmp_path.iterdir())
        assert KEY not in on_disk and ADMIN not in on_disk  # config file and logs
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_supernode_up_rejects_an_unreadable_keys_file() -> None:
    """A keys file that cannot be read fails fast with exit 2, naming the flag."""
    r = subprocess.run([sys.executable, "-m", "supernode.cli.main", "up", "--api-keys-file",
                        "/nonexistent/keys.yaml"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--api-keys-file: cannot read" in r.stderr, r.stderr
