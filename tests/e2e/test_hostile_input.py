"""Hostile input against a running cluster: each gets a 4xx in OpenAI's error JSON, nothing
leaks (in-flight counts return to zero), and /health keeps answering within 100 ms."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from services.launcher import Cluster
from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e
MODEL = "deepseek-r1"
READ_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("hostile"),
                      **{"api.body_read_timeout_s": READ_TIMEOUT_S})
    yield c
    c.stop()


def chat(content: str = "hi", **fields: object) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}],
            "max_tokens": 2, **fields}


def deep(n: int) -> bytes:
    return b'{"model": "deepseek-r1", "prompt": "x", "x": ' + b"[" * n + b"]" * n + b"}"


HOSTILE = [
    ("nested 1,000 deep", "completions", deep(1000), 400),
    ("seed -2^63-1", "completions", {"model": MODEL, "prompt": "x", "seed": -(2**63) - 1}, 400),
    ("seed 2^64", "completions", {"model": MODEL, "prompt": "x", "seed": 2**64}, 400),
    ("seed 2^64, streaming", "chat/completions", chat(seed=2**64, stream=True), 400),
    ("5 MB prompt", "completions", {"model": MODEL, "prompt": "word " * 1_000_000}, 413),
    ("a million stop strings", "completions",
     {"model": MODEL, "prompt": "x", "stop": ["ab"] * 1_000_000}, 413),
    ("17 stop strings", "completions", {"model": MODEL, "prompt": "x", "stop": ["s"] * 17}, 400),
    ("a long stop string", "completions", {"model": MODEL, "prompt": "x", "stop": "s" * 257}, 400),
    ("a million messages", "chat/completions",
     {"model": MODEL, "messages": [{"role": "user", "content": ""}] * 1_000_000}, 413),
    ("100,000 messages, under the size limit", "chat/completions",
     {"model": MODEL, "messages": [{"role": "user", "content": ""}] * 100_000}, 400),
    ("a batch of 1,000 prompts", "completions", {"model": MODEL, "prompt": ["x"] * 1000}, 400),
]


@pytest.mark.parametrize("name, endpoint, body, status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_get_openai_4xx(hostile: Cluster, name: str, endpoint: str,
                                       body: object, status: int) -> None:
    """Each hostile body is refused with the expected 4xx and OpenAI's error JSON (a stream
    too: before any event), and the worker in-flight counts go back to zero."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(f"{hostile.endpoint}/v1/{endpoint}", content=content, timeout=60,
                   headers={"content-type": "application/json"})
    assert r.status_code == status, r.text[:300]
    error = r.json()["error"]
    assert error["code"] == status and error["message"] and error["type"]
    assert_nothing_in_flight(hostile)


def test_valid_extreme_seeds_are_served(hostile: Cluster) -> None:
    """Seeds at both ends of vLLM's range (int64) are served, streaming to [DONE]; none
    leaves a phantom in-flight request behind (each used to leak one on decode)."""
    for seed in (-1, -(2**63), 2**63 - 1):
        r = httpx.post(f"{hostile.endpoint}/v1/completions", timeout=60, json={
            "model": MODEL, "prompt": "x", "max_tokens": 3, "seed": seed})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
        r = httpx.post(f"{hostile.endpoint}/v1/chat/completions", timeout=60,
                       json=chat(seed=seed, stream=True))
        assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    assert_nothing_in_flight(hostile)


def raw_request(cluster: Cluster, head: str, body: bytes) -> tuple[float, bytes]:
    """Send a raw HTTP request; return (seconds until the server closed, what it sent)."""
    url = urlsplit(cluster.endpoint)
    with socket.create_connection((url.hostname, url.port), timeout=60) as s:
        started = time.monotonic()
        s.sendall(head.encode() + body)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
        return time.monotonic() - started, received


def error_code(reply: bytes) -> int:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]["code"]


def test_a_declared_gigabyte_is_refused_at_once(hostile: Cluster) -> None:
    """A body that declares 1 GB and sends a few bytes gets 413 and a closed connection,
    without waiting for the rest."""
    head = ("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {2**30}\r\n\r\n")
    elapsed_s, reply = raw_request(hostile, head, b'{"model"')
    assert reply.startswith(b"HTTP/1.1 413") and error_code(reply) == 413
    assert elapsed_s < READ_TIMEOUT_S


def test_a_slow_body_is_cut_off(hostile: Cluster) -> None:
    """A body that stops arriving is answered 408 after body_read_timeout_s, and the
    connection is closed instead of held open."""
    head = ("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n")
    elapsed_s, reply = raw_request(hostile, head, b'{"model"')
    assert reply.startswith(b"HTTP/1.1 408") and error_code(reply) == 408
    assert 0.9 * READ_TIMEOUT_S <= elapsed_s < READ_TIMEOUT_S + 30  # timers fire a tick early


def test_health_answers_while_a_huge_prompt_is_tokenized(hostile: Cluster) -> None:
    """While the largest allowed prompt (about 4 MB of Chinese text, beyond the context) is
    tokenized, /health keeps answering within 100 ms; the prompt itself gets a 400."""
    text = "人工智能是计算机科学的一个分支。" * 85_000  # 1.36M characters, 4.1 MB of UTF-8
    body = json.dumps({"model": MODEL, "prompt": text, "max_tokens": 1},
                      ensure_ascii=False).encode()
    result: dict[str, httpx.Response] = {}

    def send() -> None:  # the body is encoded beforehand: this process must not stall either
        result["r"] = httpx.post(f"{hostile.endpoint}/v1/completions", timeout=120,
                                 content=body, headers={"content-type": "application/json"})

    sender = threading.Thread(target=send)
    latencies = []
    with httpx.Client(timeout=10) as client:
        client.get(f"{hostile.endpoint}/health")  # the connection is open before timing
        sender.start()
        while sender.is_alive():
            started = time.monotonic()
            assert client.get(f"{hostile.endpoint}/health").status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.02)
    sender.join()
    assert result["r"].status_code == 400 and "context length" in result["r"].json()[
        "error"]["message"]
    assert len(latencies) >= 10, "the prompt was processed too fast to measure anything"
    assert max(latencies) < 0.1, sorted(latencies)[-5:]
    assert_nothing_in_flight(hostile)


def assert_nothing_in_flight(cluster: Cluster) -> None:
    deadline = time.monotonic() + 30
    while True:
        workers = httpx.get(f"{cluster.endpoint}/workers", timeout=10).json()
        inflight = {w["worker_id"]: w["num_inflight"] for w in workers}
        if not any(inflight.values()):
            return
        assert time.monotonic() < deadline, inflight
        time.sleep(0.1)
