"""The OpenAI API of a running cluster, through the official openai client and raw HTTP."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from supernode.text.chat import TEMPLATES
from supernode.tokenizer import make_tokenizer

pytestmark = pytest.mark.e2e
MODEL = "deepseek-r1"


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    """/v1/models names the model with its context window."""
    (model,) = client.models.list().data
    assert model.id == MODEL and model.model_extra["max_model_len"] == 163_840


def test_streaming_chat_chunks_usage_and_done(client: openai.OpenAI, base_url: str) -> None:
    """A streamed chat: role first, content chunks, finish_reason last (with the supernode
    details), usage chunk, [DONE]; prompt_tokens is DeepSeek-R1's count of its template."""
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=12,
        stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    chunks = list(stream)
    content = [c for c in chunks if c.choices]
    assert content[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert [c.choices[0].finish_reason for c in content][-1] == "length"
    assert all(c.choices[0].finish_reason is None for c in content[:-1])
    assert content[-1].model_extra["supernode"]["decode_worker"] == "decode-0"
    assert all("supernode" not in c.model_extra for c in content[:-1])
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens == 12
    prompt = TEMPLATES["deepseek-r1"].render([{"role": "user", "content": "Tell me a story."}],
                                            True)
    # BOS, <｜User｜>, Tell, me, a, story, ., <｜Assistant｜>, <think>, \n
    assert usage.prompt_tokens == len(make_tokenizer(None, 0, MODEL).encode(prompt)) == 10
    assert usage.total_tokens == 22
    text = "".join(c.choices[0].delta.content or "" for c in content)
    assert len(text.split()) == 12
    raw = httpx.post(f"{base_url}/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
        "stream": True}, timeout=30)
    events = [e for e in raw.text.split("\n\n") if e]
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)
    assert "usage" not in json.loads(events[0][6:])


def test_completion_with_token_ids_and_exact_lengths(client: openai.OpenAI) -> None:
    """Token-id prompts are taken as-is; ignore_eos gives exactly max_tokens; the neutral
    values benchmark clients send (logprobs null, best_of 1) are accepted."""
    r = client.completions.create(model=MODEL, prompt=list(range(1000, 1600)), max_tokens=25,
                                  logprobs=None, best_of=1, temperature=0.0,
                                  extra_body={"ignore_eos": True})
    assert r.object == "text_completion" and r.choices[0].finish_reason == "length"
    assert r.usage.prompt_tokens == 600 and r.usage.completion_tokens == 25
    assert len(r.choices[0].text.split()) == 25


def test_same_seed_same_text_and_stop_strings(client: openai.OpenAI) -> None:
    """A seed makes the text reproducible; a stop string cuts it with finish_reason stop."""
    kwargs = dict(model=MODEL, prompt="Once upon a time", max_tokens=20, seed=1234,
                  extra_body={"ignore_eos": True})
    first = client.completions.create(**kwargs).choices[0].text
    assert client.completions.create(**kwargs).choices[0].text == first
    stop_word = first.split()[5]
    cut = client.completions.create(**kwargs, stop=[stop_word]).choices[0]
    assert cut.finish_reason == "stop" and cut.text == first[: first.index(stop_word)]


def test_single_token_request_needs_no_decode(client: openai.OpenAI) -> None:
    """max_tokens=1 is served by prefill alone."""
    r = client.completions.create(model=MODEL, prompt="hi", max_tokens=1)
    assert r.usage.completion_tokens == 1 and r.choices[0].finish_reason == "length"


@pytest.mark.parametrize("body, status, param", [
    (b"{not json", 400, None),
    ({"model": MODEL, "prompt": "x", "max_tokens": -3}, 400, "max_tokens"),
    ({"model": MODEL, "prompt": 17}, 400, "prompt"),
    ({"model": MODEL, "messages": "hello"}, 400, "messages"),
    ({"model": "gpt-5", "prompt": "x"}, 404, "model"),
    ({"model": MODEL, "prompt": [5] * 163_841}, 400, "messages"),
    ({"model": MODEL, "prompt": "x", "max_tokens": 163_840}, 400, "max_tokens"),
    ({"model": MODEL, "prompt": "x", "n": 129}, 400, "n"),
    ({"model": MODEL, "prompt": [10**9]}, 400, "prompt"),
    ({"model": MODEL, "prompt": "x", "logprobs": 21}, 400, "logprobs"),
    ({"model": MODEL, "prompt": "x", "seed": 2**64}, 400, "seed"),
    ({"model": MODEL, "prompt": "x", "stop": ["s"] * 17}, 400, "stop"),
    ({"model": MODEL, "prompt": "x", "logit_bias": {"5": 2}}, 400, "logit_bias"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}],
      "tool_choice": "required"}, 400, "tool_choice"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "r", "schema": {
            "type": "string", "pattern": "^a+$"}}}}, 400, "response_format"),
])
def test_bad_requests_get_openai_errors(base_url: str, body: object, status: int,
                                        param: str | None) -> None:
    """Bad input gets the right status and OpenAI's error JSON; the server keeps serving."""
    endpoint = "chat/completions" if isinstance(body, dict) and "messages" in body else "completions"
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{base_url}/{endpoint}", timeout=30, **kwargs)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["message"] and error["code"] == status and error["type"]
    if param:
        assert param in (error["param"] or "")
    ok = httpx.post(f"{base_url}/completions", json={"model": MODEL, "prompt": "x",
                                                     "max_tokens": 2}, timeout=30)
    assert ok.status_code == 200


def test_openai_client_raises_typed_errors(client: openai.OpenAI) -> None:
    """The official client maps our errors to its exception classes."""
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="x", max_tokens=0)


def test_non_streaming_chat_and_streaming_completion(client: openai.OpenAI) -> None:
    """The other two shapes: a whole chat completion, and a streamed text completion."""
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        max_completion_tokens=7, extra_body={"ignore_eos": True})
    assert chat.object == "chat.completion" and chat.choices[0].message.role == "assistant"
    assert chat.usage.completion_tokens == 7 and chat.choices[0].finish_reason == "length"
    assert len(chat.choices[0].message.content.split()) == 7
    chunks = list(client.completions.create(model=MODEL, prompt="abc", max_tokens=9, stream=True,
                                            extra_body={"ignore_eos": True}))
    assert all(c.object == "text_completion" for c in chunks)
    assert len("".join(c.choices[0].text for c in chunks).split()) == 9
    assert chunks[-1].choices[0].finish_reason == "length"


def test_every_registered_server_answers_grpc_health(cluster) -> None:
    """/workers lists every worker; each one's gRPC server reports SERVING on the standard
    health service."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    workers = httpx.get(f"{cluster.endpoint}/workers", timeout=5).json()
    assert sorted(w["kind"] for w in workers) == ["decode", "ems", "prefill"]
    for w in workers:
        with grpc.insecure_channel(w["address"]) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, w["worker_id"]
