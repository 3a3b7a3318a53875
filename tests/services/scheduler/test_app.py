"""The scheduler's HTTP app composed, in process: a batch is accepted whole or refused whole,
the middleware order (API keys before body limits), several served models."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry

from services.common.credentials import Credentials
from services.scheduler import auth
from services.scheduler.app import FrontEnd, ServedModelCard, build_app
from services.scheduler.fault_book import FaultBook
from services.scheduler.flow import RequestFlow
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.token_streams import TokenStreams
from supernode.clock import WallClock
from supernode.config import ApiConfig, ClusterConfig
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry
from supernode.lifecycle.scheduler import Lifecycle
from supernode.tokenizer import make_tokenizer

MODEL = "deepseek-r1"
DECODE_KV_TOKENS = 100


def front_end(credentials: Credentials | None = None) -> FrontEnd:
    """A front end over one live prefill and one decode instance holding 100 tokens of KV."""
    prometheus = CollectorRegistry()
    metrics = SchedulerMetrics(prometheus, MODEL, 4096)
    registry = WorkerRegistry(lease_s=60.0)
    for kind in (WorkerKind.PREFILL, WorkerKind.DECODE):
        registry.register(WorkerInfo(f"{kind.value}-0", kind, "127.0.0.1:1",
                                     kv_capacity_tokens=DECODE_KV_TOKENS), now_s=0.0)
    flow = RequestFlow(Lifecycle(ClusterConfig(), registry), TokenStreams("test"),
                       WallClock(1.0), metrics)
    return FrontEnd(model_name=MODEL, max_model_len=4096,
                    tokenizer=make_tokenizer(None, 129_280, MODEL), flow=flow,
                    registry=registry, metrics=metrics, prometheus=prometheus, created=0,
                    faults=FaultBook(registry, prometheus),
                    expected_workers={WorkerKind.PREFILL: 1, WorkerKind.DECODE: 1},
                    instance_id="test", api_keys=auth.ApiKeys(credentials or Credentials()),
                    limits=ApiConfig(max_body_bytes=1024))


def client_for(fe: FrontEnd) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(build_app(fe)),
                             base_url="http://scheduler")


async def test_a_batch_with_one_prompt_too_large_is_refused_whole() -> None:
    """A batched completion whose second prompt can never fit a decode instance's KV is a
    400 naming it, and its first prompt, accepted a moment before, is not left behind in the
    lifecycle (nor counted against any worker); the metrics count one refusal, no request."""
    fe = front_end()
    async with client_for(fe) as client:
        response = await client.post("/v1/completions", json={
            "model": MODEL, "prompt": [[1000, 1001, 1002], list(range(1000, 1100))],
            "max_tokens": 8})
    assert response.status_code == 400, response.text
    assert "exceeds the KV capacity" in response.json()["error"]["message"]
    assert fe.flow.active == {}
    assert [w.num_inflight for w in fe.registry.all()] == [0, 0]
    labels = {"model_name": MODEL}
    assert fe.prometheus.get_sample_value("supernode_requests_rejected_total",
                                          labels | {"reason": "too_large"}) == 1
    assert fe.prometheus.get_sample_value("vllm:request_success_total",
                                          labels | {"finished_reason": "abort"}) == 0


async def test_an_unauthenticated_request_is_refused_before_its_body_is_read() -> None:
    """With API keys configured, a request without a key gets 401 even when its body breaks
    the body limits: the key is checked first, so no body is buffered for a stranger. With
    the key, the same body is a 413."""
    fe = front_end(Credentials(api_keys=(("k-a", ""),)))
    big = {"model": MODEL, "prompt": "x" * 2048, "max_tokens": 1}
    async with client_for(fe) as client:
        stranger = await client.post("/v1/completions", json=big)
        known = await client.post("/v1/completions", json=big,
                                  headers={"authorization": "Bearer k-a"})
    assert stranger.status_code == 401, stranger.text
    assert known.status_code == 413, known.text


async def test_every_served_model_is_listed_and_answers_with_its_own_limits() -> None:
    """With several served models, /v1/models lists each, /v1/models/{id} and /tokenize
    answer with the named model's context length (the primary's without a name), and an
    unknown name is a 404 in OpenAI's error JSON."""
    fe = front_end()
    fe.models = {"deepseek-r1": ServedModelCard("deepseek-r1", "deepseek-r1@v1", 4096),
                 "qwen3-235b-a22b": ServedModelCard("qwen3-235b-a22b", "qwen3-235b-a22b@v1",
                                                    2048)}
    async with client_for(fe) as client:
        listed = (await client.get("/v1/models")).json()["data"]
        qwen = (await client.get("/v1/models/qwen3-235b-a22b")).json()
        by_name = (await client.post("/tokenize", json={"model": "qwen3-235b-a22b",
                                                        "prompt": "hello"})).json()
        primary = (await client.post("/tokenize", json={"prompt": "hello"})).json()
        unknown = await client.post("/tokenize", json={"model": "nope", "prompt": "hello"})
    assert [(m["id"], m["root"], m["max_model_len"]) for m in listed] == [
        ("deepseek-r1", "deepseek-r1@v1", 4096), ("qwen3-235b-a22b", "qwen3-235b-a22b@v1", 2048)]
    assert qwen["id"] == "qwen3-235b-a22b" and qwen["max_model_len"] == 2048
    assert by_name["max_model_len"] == 2048 and primary["max_model_len"] == 4096
    assert by_name["tokens"] == primary["tokens"]  # one tokenizer: the primary model's
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"


async def test_a_resized_pool_sets_what_health_expects() -> None:
    """PUT /admin/pools/decode (a launcher that scaled the pool) moves /health's expectation:
    two decode instances expected, one live: degraded (503); back to one: ok. Bad pools and
    sizes are 400s in OpenAI error JSON."""
    fe = front_end()
    async with client_for(fe) as client:
        assert (await client.get("/health")).status_code == 200
        r = await client.put("/admin/pools/decode", json={"instances": 2})
        assert r.status_code == 200 and r.json() == {"pool": "decode", "expected": 2}
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["expected"]["decode"] == 2
        await client.put("/admin/pools/decode", json={"instances": 1})
        assert (await client.get("/health")).status_code == 200
        bad_pool = await client.put("/admin/pools/ems", json={"instances": 2})
        assert bad_pool.status_code == 400 and bad_pool.json()["error"]["param"] == "pool"
        bad_size = await client.put("/admin/pools/decode", json={"instances": 0})
        assert bad_size.status_code == 400 and "error" in bad_size.json()
