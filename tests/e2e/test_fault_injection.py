"""Faults on demand, as an operator injects them: the admin API and `supernode fault`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import openai
import pytest

from services.launcher import Cluster
from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e

MODEL = "deepseek-r1"


def fault_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supernode.cli.main", "fault", "--url",
                           cluster.endpoint, *args], capture_output=True, text=True, timeout=60)


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def metric(url: str, name: str, **labels: str) -> float:
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def worker_metrics_url(cluster: Cluster, worker_id: str) -> str:
    workers = httpx.get(f"{cluster.endpoint}/workers", timeout=5).json()
    (address,) = [w["metrics_address"] for w in workers if w["worker_id"] == worker_id]
    return f"http://{address}/metrics"


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory):
    c = start_cluster(tmp_path_factory.mktemp("faults"), num_prefill=2)
    yield c
    c.stop()


@pytest.fixture
def cluster(shared_cluster: Cluster):
    """The module's cluster; whatever a test injected is cleared after it."""
    yield shared_cluster
    httpx.delete(f"{shared_cluster.endpoint}/admin/faults", timeout=5)


def test_cli_fails_the_next_requests_with_the_status_asked(cluster: Cluster) -> None:
    """`supernode fault fail-requests --status 429 --count 2`: the next two requests get 429
    (the openai client sees RateLimitError), the third is served; the fault is listed while
    active, gone after, and counted in the scheduler's metrics."""
    r = fault_cli(cluster, "fail-requests", "--status", "429", "--count", "2")
    assert r.returncode == 0, r.stderr
    fault = json.loads(r.stdout)
    assert (fault["kind"], fault["requests_left"]) == ("fail_requests", 2)
    assert [f["id"] for f in json.loads(fault_cli(cluster, "list").stdout)["faults"]] == [
        fault["id"]]
    client = openai.OpenAI(base_url=f"{cluster.endpoint}/v1", api_key="x", max_retries=0)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            client.completions.create(model=MODEL, prompt="hi", max_tokens=2)
    assert client.completions.create(model=MODEL, prompt="hi", max_tokens=2).choices
    assert json.loads(fault_cli(cluster, "list").stdout) == {"faults": []}
    url = f"{cluster.endpoint}/metrics"
    assert metric(url, "supernode_fault_failed_requests_total", status="429") == 2
    assert metric(url, "supernode_faults_injected_total", kind="fail_requests") >= 1


def test_cli_refuses_bad_faults_naming_the_problem(cluster: Cluster) -> None:
    """Bad flags exit 2 naming the flag; a fault the server refuses exits 1 with its message."""
    r = fault_cli(cluster, "degrade-link", "--plane", "ub", "--factor", "0.5")
    assert r.returncode == 2 and "--factor" in r.stderr
    r = fault_cli(cluster, "kill", "decode-7")
    assert r.returncode == 1 and "HTTP 404" in r.stderr and "decode-7" in r.stderr


def modelled(cluster: Cluster) -> dict:
    """One fixed request (same seed: same tokens, same MTP acceptances) alone on the cluster."""
    r = httpx.post(f"{cluster.endpoint}/v1/completions", json={
        "model": MODEL, "prompt": [11] * 256, "max_tokens": 64, "ignore_eos": True,
        "seed": 7}, timeout=60)
    r.raise_for_status()
    return r.json()["supernode"]


def test_a_degraded_ub_plane_slows_modelled_tpot_until_cleared(cluster: Cluster) -> None:
    """degrade_link ub x10 on the decode pool: once decode applies it, the same request's
    modelled TPOT is clearly longer (MoE dispatch/combine run on UB); after the fault is
    cleared it is back to the baseline. Visible in both processes' metrics meanwhile."""
    base = modelled(cluster)["modelled_tpot_s"]
    created = httpx.post(f"{cluster.endpoint}/admin/faults", json={
        "kind": "degrade_link", "plane": "ub", "factor": 10, "target": "decode"}, timeout=5)
    assert created.status_code == 201, created.text
    decode = worker_metrics_url(cluster, "decode-0")
    wait_for(lambda: metric(decode, "supernode_link_slowdown", plane="ub") == 10, 20,
             "decode to apply the fault")
    assert metric(decode, "supernode_link_slowdown", plane="ems_ub") == 10
    assert metric(worker_metrics_url(cluster, "prefill-0"), "supernode_link_slowdown",
                  plane="ub") == 1  # the fault targets the decode pool only
    assert metric(f"{cluster.endpoint}/metrics", "supernode_faults_active",
                  kind="degrade_link") == 1
    slow = modelled(cluster)["modelled_tpot_s"]
    assert slow > 1.2 * base

    deleted = httpx.delete(f"{cluster.endpoint}/admin/faults/{created.json()['id']}", timeout=5)
    assert deleted.status_code == 200
    wait_for(lambda: metric(decode, "supernode_link_slowdown", plane="ub") == 1, 20,
             "decode to revert")
    assert modelled(cluster)["modelled_tpot_s"] == pytest.approx(base, rel=0.05)


def test_a_link_fault_on_rdma_slows_the_kv_transfer_for_its_duration(cluster: Cluster) -> None:
    """rdma x20 for a few seconds on prefill: the modelled TTFT (which includes the P->D KV
    transfer) grows while it lasts, and the fault expires by itself."""
    base = modelled(cluster)["modelled_ttft_s"]
    r = fault_cli(cluster, "degrade-link", "--plane", "rdma", "--factor", "20", "--target",
                  "prefill", "--duration", "5")
    assert r.returncode == 0, r.stderr
    urls = [worker_metrics_url(cluster, f"prefill-{i}") for i in range(2)]
    wait_for(lambda: all(metric(u, "supernode_link_slowdown", plane="rdma") == 20 for u in urls),
             20, "both prefills to apply it")
    assert modelled(cluster)["modelled_ttft_s"] > base
    wait_for(lambda: json.loads(fault_cli(cluster, "list").stdout) == {"faults": []}, 30,
             "the fault to expire")
    wait_for(lambda: all(metric(u, "supernode_link_slowdown", plane="rdma") == 1 for u in urls),
             20, "both prefills to revert")


def test_stall_freezes_a_worker_for_its_duration(cluster: Cluster) -> None:
    """`supernode fault stall decode-0 --duration 1.5`: the worker reports the stall, a stream
    running on it pauses for about that long, and the stream still completes."""
    r = fault_cli(cluster, "stall", "decode-0", "--duration", "1.5")
    assert r.returncode == 0, r.stderr
    decode = worker_metrics_url(cluster, "decode-0")
    wait_for(lambda: metric(decode, "supernode_faults_active", kind="stall_worker") == 1, 20,
             "the stall")
    started = time.monotonic()
    (fault,) = httpx.get(f"{cluster.endpoint}/admin/faults", timeout=5).json()["faults"]
    assert (fault["kind"], fault["delivered_to"]) == ("stall_worker", ["decode-0"])
    r = httpx.post(f"{cluster.endpoint}/v1/completions", json={
        "model": MODEL, "prompt": [12] * 64, "max_tokens": 8, "ignore_eos": True}, timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 8
    wait_for(lambda: metric(decode, "supernode_faults_active", kind="stall_worker") == 0, 20,
             "the stall to end")
    assert time.monotonic() - started > 0.3  # it waited on the frozen worker


def test_ems_unreachable_opens_prefills_breaker_and_ends_by_itself(cluster: Cluster) -> None:
    """ems_unreachable (refuse, 5 s): EMS refuses calls, so the breaker of the prefill that
    serves the requests opens, and after the duration the fault expires and EMS serves again."""
    r = fault_cli(cluster, "ems-unreachable", "--duration", "5")
    assert r.returncode == 0, r.stderr
    ems_url = next(c for c in cluster.children if c.name == "ems").metrics_url
    wait_for(lambda: metric(ems_url, "supernode_faults_active", kind="ems_unreachable") == 1,
             20, "EMS to apply it")
    urls = [worker_metrics_url(cluster, f"prefill-{i}") for i in range(2)]
    opened = [metric(u, "supernode_cache_breaker_transitions_total", to="open") for u in urls]
    for i in range(8):
        httpx.post(f"{cluster.endpoint}/v1/completions", json={
            "model": MODEL, "prompt": [13 + i] * 300, "max_tokens": 2}, timeout=60)
    assert metric(ems_url, "supernode_ems_fault_refused_calls_total", rpc="Lookup",
                  mode="refuse") >= 1
    assert sum(metric(u, "supernode_cache_breaker_transitions_total", to="open")
               for u in urls) >= sum(opened) + 1
    wait_for(lambda: metric(ems_url, "supernode_faults_active", kind="ems_unreachable") == 0,
             30, "the fault to end on EMS")


def test_kill_takes_a_worker_down_at_once(cluster: Cluster) -> None:
    """`supernode fault kill prefill-1`: the process dies by SIGKILL (no drain), and the
    scheduler's /health says the prefill pool is short."""
    victim = next(c for c in cluster.children if c.name == "prefill-1").process
    r = fault_cli(cluster, "kill", "prefill-1")
    assert r.returncode == 0, r.stderr
    assert victim.wait(timeout=30) == -signal.SIGKILL
    wait_for(lambda: httpx.get(f"{cluster.endpoint}/health", timeout=5).json()[
        "degraded_pools"] == ["prefill"], 20, "/health degraded")
    assert metric(f"{cluster.endpoint}/metrics", "supernode_faults_injected_total",
                  kind="kill_worker") == 1
