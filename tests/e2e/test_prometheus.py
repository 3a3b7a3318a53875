"""A real Prometheus, configured from deploy/prometheus/local.yml, scraping a running cluster
under a short load: it discovers every worker through the scheduler, every series the
dashboards use exists, every panel query returns data, and counters equal what the client saw.
The cluster has an admin key, so the scheduler's /metrics and /sd/targets need it: Prometheus
sends it with the `authorization` blocks of deploy/prometheus/prometheus.yml (compose's).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from services.common.credentials import Credentials
from services.launcher import Cluster, free_port
from tests.deploy.dashboards import PROMETHEUS, dashboards, metric_names, queries, variable_metrics
from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e

PROMETHEUS_BIN = shutil.which("prometheus")
LOCAL_SCHEDULER = "127.0.0.1:8000"
RATE_INTERVAL = "30s"
NUM_REQUESTS = 32
CONCURRENCY = 4
MAX_TOKENS = 24
PREFIX = list(range(1000, 1512))  # 4 blocks of 128 tokens shared by every prompt: EMS hits
ADMIN_KEY = "prometheus-test-admin-key"
COMPOSE_SECRET = "/run/secrets/admin_key"


@dataclass
class Load:
    """What the client counted."""

    num_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


class Prometheus:
    """One Prometheus server process on a free loopback port with its own storage."""

    def __init__(self, workdir: Path, scheduler: str) -> None:
        config = yaml.safe_load((PROMETHEUS / "local.yml").read_text()
                                .replace(LOCAL_SCHEDULER, scheduler))
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        key_file = workdir / "admin_key"
        key_file.write_text(ADMIN_KEY)
        compose = {job["job_name"]: job for job in yaml.safe_load(
            (PROMETHEUS / "prometheus.yml").read_text().replace(COMPOSE_SECRET, str(key_file))
        )["scrape_configs"]}
        for job in config["scrape_configs"]:
            if "authorization" in compose[job["job_name"]]:
                job["authorization"] = compose[job["job_name"]]["authorization"]
            for sd, compose_sd in zip(job.get("http_sd_configs", []),
                                      compose[job["job_name"]].get("http_sd_configs", [])):
                sd["refresh_interval"] = "1s"
                sd["authorization"] = compose_sd["authorization"]
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port('127.0.0.1')}"
        self.log_path = workdir / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [PROMETHEUS_BIN, f"--config.file={config_path}",
                 f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready: {self.log_path.read_text()}")

    def query(self, expr: str) -> list[dict]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, want: float, timeout_s: float = 15.0) -> float | None:
        deadline = time.monotonic() + timeout_s
        value = self.scalar(expr)
        while value != want and time.monotonic() < deadline:
            time.sleep(0.5)
            value = self.scalar(expr)
        return value

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _drive(cluster: Cluster) -> Load:
    """NUM_REQUESTS completions sharing a 512-token prefix, CONCURRENCY at a time."""
    load, queue = Load(), asyncio.Queue()
    for i in range(NUM_REQUESTS):
        queue.put_nowait(i)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            response = await client.post(f"{cluster.endpoint}/v1/completions", json={
                "model": cluster.config.model_name, "prompt": PREFIX + [2000 + i] * (20 + i),
                "max_tokens": MAX_TOKENS, "ignore_eos": True})
            response.raise_for_status()
            usage = response.json()["usage"]
            load.num_requests += 1
            load.prompt_tokens += usage["prompt_tokens"]
            load.completion_tokens += usage["completion_tokens"]
            load.cached_tokens += (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(CONCURRENCY)))
    return load


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Load]]:
    if PROMETHEUS_BIN is None:
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus; "
                    "scripts/test.sh does it when run as root)")
    tmp = tmp_path_factory.mktemp("prometheus")
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"),
                            Credentials(admin_key=ADMIN_KEY))
    for path in ("/metrics", "/sd/targets"):  # the key is needed, so the scrape proves it works
        assert httpx.get(f"{cluster.endpoint}{path}", timeout=5).status_code == 401, path
    prometheus = Prometheus(tmp, cluster.endpoint.removeprefix("http://"))
    try:
        prometheus.wait_ready()
        c = cluster.config
        num_workers = c.num_prefill + c.num_decode + int(c.cache.enabled)
        assert prometheus.wait_for('count(up{job="supernode-workers"} == 1)', num_workers) \
            == num_workers, "workers not discovered through /sd/targets"
        assert prometheus.wait_for('count(up{job="supernode-scheduler"} == 1)', 1) == 1
        load = asyncio.run(_drive(cluster))
        yield prometheus, load
    finally:
        prometheus.stop()
        cluster.stop()


def test_every_role_is_scraped_through_discovery(observed: tuple[Prometheus, Load]) -> None:
    """The scheduler is scraped statically, every worker through the scheduler's registry."""
    prometheus, _ = observed
    roles = {r["metric"]["role"] for r in prometheus.query("up == 1")}
    assert roles == {"scheduler", "prefill", "decode", "ems"}


def test_counters_equal_what_the_client_counted(observed: tuple[Prometheus, Load]) -> None:
    """Requests completed, prompt and generated tokens and cached tokens, as Prometheus sees
    them, equal the client's totals from the OpenAI `usage` objects."""
    prometheus, load = observed
    assert load.num_requests == NUM_REQUESTS and load.cached_tokens > 0
    expected = {
        'sum(vllm:request_success_total{role="scheduler"})': load.num_requests,
        'sum(vllm:request_success_total{role="decode",finished_reason="length"})':
            load.num_requests,
        'sum(vllm:request_generation_tokens_sum{role="scheduler"})': load.completion_tokens,
        'sum(vllm:generation_tokens_total{role=~"prefill|decode"})': load.completion_tokens,
        'sum(vllm:prompt_tokens_total{role="prefill"})': load.prompt_tokens,
        'sum(supernode_cached_prompt_tokens_total{role="scheduler"})': load.cached_tokens,
    }
    for expr, want in expected.items():
        assert prometheus.wait_for(expr, want) == want, expr


def test_every_series_the_dashboards_use_exists(observed: tuple[Prometheus, Load]) -> None:
    prometheus, load = observed
    prometheus.wait_for('sum(vllm:request_success_total{role="scheduler"})', load.num_requests)
    names = {n for _, _, expr in queries() for n in metric_names(expr)}
    missing = sorted(n for n in names if not prometheus.query(f'count({{__name__="{n}"}})'))
    assert not missing, f"no series in Prometheus for {missing}"
    for board in dashboards().values():
        for metric, label in variable_metrics(board):
            response = httpx.get(f"{prometheus.url}/api/v1/label/{label}/values",
                                 params={"match[]": metric}, timeout=10).json()
            assert response["data"], (metric, label)


def test_every_panel_query_returns_data(observed: tuple[Prometheus, Load]) -> None:
    """Each target of each panel, expanded as Grafana would over a 30 s rate window that
    covers the load, returns at least one finite value through /api/v1/query."""
    prometheus, load = observed
    prometheus.wait_for('sum(vllm:request_success_total{role="scheduler"})', load.num_requests)
    empty = []
    for board, title, expr in queries(RATE_INTERVAL):
        values = [float(r["value"][1]) for r in prometheus.query(expr)]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{board} / {title}: {expr} -> {values}")
    assert not empty, "\n".join(empty)
