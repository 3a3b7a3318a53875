"""The prefix cache through real clusters: EMS on memory and Redis, UB vs VPC, decode KV,
EMS loss, and kv-affinity routing over per-instance local caches."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from services.launcher import Cluster
from supernode.deployment import instance_deployment
from supernode.lifecycle.cache import cache_source
from supernode.perf import PrefillBatch, kv_handoff_times, prefill_time
from supernode.tokenizer import make_tokenizer
from tests.cache.redis_server import REDIS_SERVER, SKIP_REASON, RedisServer, free_port
from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e
MODEL = "deepseek-r1"
BLOCK = 128
PROMPT_LEN = 64 * BLOCK + 64
"""8,256 tokens: 64 full blocks, long enough that the modelled saving (~80 ms) dwarfs queueing."""
QUEUE_SLACK_S = 0.03
"""Model seconds a lone request may wait for its batch (event-loop latency on a busy box)."""


def prompt(seed: int, length: int = PROMPT_LEN) -> list[int]:
    return [1000 + (seed * 7919 + i) % 100_000 for i in range(length)]


def client(cluster: Cluster) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cluster.endpoint}/v1", api_key="test", max_retries=0)


def complete(cluster: Cluster, tokens: list[int], max_tokens: int = 2) -> openai.types.Completion:
    return client(cluster).completions.create(model=MODEL, prompt=tokens, max_tokens=max_tokens,
                                              extra_body={"ignore_eos": True}, timeout=60)


SERIAL_PREFILL = {"prefill.microbatch": False}
"""A lone prompt's prefill is bound by reading the weights, which two overlapped microbatches
read twice: serial prefill keeps the cache's saving visible to these single-request tests."""


def cached(r: openai.types.Completion) -> int:
    return r.usage.prompt_tokens_details.cached_tokens


def details(r: openai.types.Completion) -> dict:
    return r.model_extra["supernode"]


def modelled_ttft_s(cluster: Cluster, num_tokens: int, num_cached: int) -> float:
    """What the hardware model says a lone request takes to its first token (queue excluded):
    its batch (the cache fetch included) and its KV hand-off."""
    d = instance_deployment(cluster.config, "prefill")
    kv_bytes = d.model.kv_bytes_per_token(d.kv_dtype)
    batch = prefill_time(PrefillBatch((num_tokens,), (num_cached,), cache_source(cluster.config)),
                         d)
    (handoff,) = kv_handoff_times([num_tokens * kv_bytes], d)
    return batch.total_s + handoff.total_s


def prefill_metric(cluster: Cluster, name: str) -> list[float]:
    """`name` on every prefill worker's /metrics."""
    targets = httpx.get(f"{cluster.endpoint}/sd/targets", timeout=5).json()
    values = []
    for target in targets:
        if target["labels"]["role"] == "prefill":
            text = httpx.get(f"http://{target['targets'][0]}/metrics", timeout=5).text
            values += [float(v) for v in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.MULTILINE)]
    return values


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(free_port(), tmp_path_factory.mktemp("e2e-redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def memory_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """EMS in memory, UB plane, decode KV stored."""
    c = start_cluster(tmp_path_factory.mktemp("memory"), **SERIAL_PREFILL,
                      **{"cache.store_decode_kv": True})
    yield c
    c.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Cluster]:
    """EMS on Redis, UB plane, decode KV not stored (the default)."""
    c = start_cluster(tmp_path_factory.mktemp("redis"), **SERIAL_PREFILL,
                      **{"cache.backend": "redis", "cache.redis_url": redis_url})
    yield c
    c.stop()


@pytest.fixture(scope="module")
def vpc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """EMS in memory reached over VPC."""
    c = start_cluster(tmp_path_factory.mktemp("vpc"), **SERIAL_PREFILL, **{"cache.plane": "vpc"})
    yield c
    c.stop()


@contextmanager
def running_cluster(tmp: Path, **overrides: object) -> Iterator[Cluster]:
    c = start_cluster(tmp, **overrides)
    try:
        yield c
    finally:
        c.stop()


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_repeated_prompt_is_cached_and_saves_the_modelled_prefill(
        backend: str, request: pytest.FixtureRequest) -> None:
    """A repeated prompt reports its full blocks as cached_tokens, and its modelled TTFT drops by
    what the hardware model says: prefill_time(n, 0) - prefill_time(n, k) - UB fetch of k."""
    cluster = request.getfixturevalue(f"{backend}_cluster")
    tokens = prompt(seed=1 if backend == "memory" else 2)
    cold, warm = complete(cluster, tokens), complete(cluster, tokens)
    assert cached(cold) == 0 and cached(warm) == 64 * BLOCK
    expected_cold = modelled_ttft_s(cluster, PROMPT_LEN, 0)
    expected_warm = modelled_ttft_s(cluster, PROMPT_LEN, 64 * BLOCK)
    assert 0 <= details(cold)["modelled_ttft_s"] - expected_cold < QUEUE_SLACK_S
    assert 0 <= details(warm)["modelled_ttft_s"] - expected_warm < QUEUE_SLACK_S
    saved = details(cold)["modelled_ttft_s"] - details(warm)["modelled_ttft_s"]
    assert saved == pytest.approx(expected_cold - expected_warm, abs=QUEUE_SLACK_S)
    assert expected_cold - expected_warm > 2 * QUEUE_SLACK_S


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_decode_kv_is_stored_only_when_enabled(backend: str,
                                               request: pytest.FixtureRequest) -> None:
    """cache.store_decode_kv (on in the memory cluster, off by default) stores the full blocks
    of prompt + output at request end, so the next turn hits past the first prompt; only
    tokens with KV count (the last sampled token has none)."""
    cluster = request.getfixturevalue(f"{backend}_cluster")
    first = prompt(seed=10 if backend == "memory" else 11, length=2 * BLOCK - 6)
    reply = complete(cluster, first, max_tokens=8)
    output = make_tokenizer(None, 129_280, MODEL).encode(reply.choices[0].text)
    assert len(output) == 8
    time.sleep(0.3)  # the store is asynchronous
    turn = complete(cluster, first + output + prompt(seed=12, length=BLOCK))
    # KV exists for 250 + 7 tokens: 2 full blocks; the prompt alone filled 1.
    assert cached(turn) == (2 if backend == "memory" else 1) * BLOCK


def test_vpc_plane_fetches_slower_than_ub(memory_cluster: Cluster,
                                          vpc_cluster: Cluster) -> None:
    """With EMS reached over VPC the same hit costs the ems_vpc fetch (the instance's nodes'
    400 Gb/s NICs) instead of ems_ub: the cached TTFT is the model's for that plane, and higher
    than over UB."""
    tokens = prompt(seed=3)
    complete(memory_cluster, tokens)
    ub = details(complete(memory_cluster, tokens))["modelled_ttft_s"]
    cold = complete(vpc_cluster, tokens)
    warm = complete(vpc_cluster, tokens)
    assert cached(warm) == 64 * BLOCK
    vpc = details(warm)["modelled_ttft_s"]
    assert 0 <= vpc - modelled_ttft_s(vpc_cluster, PROMPT_LEN, 64 * BLOCK) < QUEUE_SLACK_S
    assert vpc > ub
    assert details(cold)["modelled_ttft_s"] == pytest.approx(
        modelled_ttft_s(vpc_cluster, PROMPT_LEN, 0), abs=QUEUE_SLACK_S)


def test_ems_killed_mid_run_loses_no_request(tmp_path: Path) -> None:
    """EMS killed with requests in flight: every request completes, later ones with
    cached_tokens 0, and the prefill worker reports supernode_cache_degraded 1."""
    with running_cluster(tmp_path, **{"cache.plane": "vpc"}) as cluster:
        _kill_ems_mid_run(cluster)


def _kill_ems_mid_run(cluster: Cluster) -> None:
    tokens = prompt(seed=20, length=16 * BLOCK + 5)
    complete(cluster, tokens)
    assert cached(complete(cluster, tokens)) == 16 * BLOCK
    results: list[object] = []

    def send() -> None:
        try:
            results.append(complete(cluster, tokens))
        except Exception as e:
            results.append(e)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    next(c for c in cluster.children if c.name == "ems").process.kill()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 6
    assert all(isinstance(r, openai.types.Completion) for r in results), results
    assert [cached(complete(cluster, tokens)) for _ in range(2)] == [0, 0]
    assert prefill_metric(cluster, "supernode_cache_degraded") == [1.0]


def test_kv_affinity_routes_a_repeated_prefix_to_the_instance_that_holds_it(
        tmp_path: Path) -> None:
    """Under kv-affinity each prefill instance has its own cache; two concurrent prompts land on
    different instances (load), and each repeat goes back to its instance and hits there,
    although least-loaded order (all idle) would send both to prefill-0."""
    a, b = prompt(seed=30), prompt(seed=31)
    with running_cluster(tmp_path, num_prefill=2, routing_policy="kv-affinity") as cluster:
        first: dict[str, openai.types.Completion] = {}

        def send(name: str, tokens: list[int]) -> None:
            first[name] = complete(cluster, tokens)

        threads = [threading.Thread(target=send, args=item) for item in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        homes = {name: details(r)["prefill_worker"] for name, r in first.items()}
        assert set(homes.values()) == {"prefill-0", "prefill-1"}
        for name, tokens in (("b", b), ("a", a), ("b", b + prompt(seed=32, length=BLOCK))):
            again = complete(cluster, tokens)
            assert details(again)["prefill_worker"] == homes[name]
            assert cached(again) == 64 * BLOCK


def test_ems_health_follows_its_redis(tmp_path: Path) -> None:
    """EMS on Redis reports NOT_SERVING on the gRPC health service while Redis is down, serves
    requests without the cache meanwhile, and reports SERVING again once Redis is back."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    (tmp_path / "redis").mkdir()
    (tmp_path / "cluster").mkdir()
    redis = RedisServer(free_port(), tmp_path / "redis")
    redis.start()
    try:
        with running_cluster(tmp_path / "cluster", **{"cache.backend": "redis",
                                                      "cache.redis_url": redis.url}) as cluster:
            workers = httpx.get(f"{cluster.endpoint}/workers", timeout=5).json()
            (ems,) = [w["address"] for w in workers if w["kind"] == "ems"]

            def status() -> int:
                with grpc.insecure_channel(ems) as channel:
                    return health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=5).status

            def wait_for(wanted: int) -> None:
                deadline = time.monotonic() + 10
                while status() != wanted and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert status() == wanted

            wait_for(health_pb2.HealthCheckResponse.SERVING)
            redis.stop()
            wait_for(health_pb2.HealthCheckResponse.NOT_SERVING)
            assert cached(complete(cluster, prompt(seed=40, length=300))) == 0
            redis.start()
            wait_for(health_pb2.HealthCheckResponse.SERVING)
    finally:
        redis.stop()
