"""`n` > 1 as parallel sampling on a running cluster: one prefill per prompt, n choices out,
usage counting the prompt once and every choice's tokens."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.running_up import wait_for

pytestmark = pytest.mark.e2e
MODEL = "deepseek-r1"
MESSAGES = [{"role": "user", "content": "Write a poem about a supernode."}]


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)


def counter(cluster, name: str, **labels: str) -> float:
    """A scheduler counter, summed over the series with `labels`."""
    text = httpx.get(f"{cluster.endpoint}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == name
               for s in f.samples if s.name.endswith("_total")
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_chat_n_choices_share_one_prefill(client: openai.OpenAI, cluster) -> None:
    """Three choices, indexed 0-2, each its own text; the prompt is counted (and prefilled)
    once; completion tokens are every choice's."""
    one = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24,
                                         seed=5)
    prefills = counter(cluster, "supernode_routed", pool="prefill")
    decodes = counter(cluster, "supernode_routed", pool="decode")
    transferred = counter(cluster, "supernode_kv_transfer_bytes")
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24, n=3,
                                       seed=5)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert len({c.message.content for c in r.choices}) == 3
    assert r.choices[0].message.content == one.choices[0].message.content  # choice 0's seed
    assert all(c.finish_reason in ("stop", "length") for c in r.choices)
    assert r.usage.prompt_tokens == one.usage.prompt_tokens
    assert counter(cluster, "supernode_routed", pool="prefill") - prefills == 1
    assert counter(cluster, "supernode_routed", pool="decode") - decodes == 1
    kv_bytes = one.model_extra["supernode"]["kv_transfer_bytes"]
    assert counter(cluster, "supernode_kv_transfer_bytes") - transferred == kv_bytes
    details = r.model_extra["supernode"]
    assert isinstance(details, dict)  # one request behind the three choices
    assert details["kv_transfer_bytes"] == kv_bytes


def test_streamed_batch_with_n_interleaves_every_choice(client: openai.OpenAI) -> None:
    """Two prompts x n=2: choices 0-3 (prompt i's are 2i and 2i+1), each finishing once;
    usage counts both prompts once each and every token streamed."""
    prompts = [[11, 12, 13, 14], [21, 22, 23, 24, 25, 26]]
    chunks = list(client.completions.create(
        model=MODEL, prompt=prompts, max_tokens=16, n=2, seed=9, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for chunk in chunks[:-1]:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
            if c.finish_reason:
                assert c.index not in finishes
                finishes[c.index] = c.finish_reason
    assert sorted(finishes) == [0, 1, 2, 3] and set(finishes.values()) == {"length"}
    usage = chunks[-1].usage
    assert usage.prompt_tokens == 4 + 6
    assert usage.completion_tokens == 4 * 16
    assert texts[0] != texts[1] and texts[2] != texts[3]


def test_a_stop_string_ends_one_choice_and_the_rest_go_on(client: openai.OpenAI) -> None:
    """A choice cut by a stop string ends with "stop" and its later tokens are not counted;
    the other choices run to max_tokens."""
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=48, n=4,
                                  seed=3, stop=[" the"], extra_body={"ignore_eos": True})
    assert all(" the" not in c.text for c in r.choices)
    assert {c.finish_reason for c in r.choices} <= {"stop", "length"}
    alone = [client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=48,
                                       seed=3, extra_body={"ignore_eos": True})]
    assert alone[0].usage.completion_tokens == 48
    if any(c.finish_reason == "stop" for c in r.choices):
        assert r.usage.completion_tokens < 4 * 48
    else:
        assert r.usage.completion_tokens == 4 * 48


@pytest.mark.parametrize("extra, message", [
    ({"n": 129}, "at most 128"),
    ({"n": 2, "response_format": {"type": "json_object"}}, "not supported"),
    ({"n": 100_000}, "at most"),
])
def test_what_n_cannot_do_is_a_400(client: openai.OpenAI, extra: dict, message: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8,
                                       **extra)
    assert message in str(e.value) and e.value.body["param"] == "n"


def decode_running(cluster) -> int:
    """Sequences the decode instances last reported running (heartbeats)."""
    workers = httpx.get(f"{cluster.endpoint}/workers").json()
    return sum(w["load"]["num_running"] + w["load"]["num_waiting"] for w in workers
               if w["kind"] == "decode")


def test_a_client_leaving_frees_every_choice_on_decode(client: openai.OpenAI, cluster) -> None:
    """Hanging up on a streamed n=3 request ends all three sequences on decode at once (they
    had 2,000 tokens to go: about 30 model seconds)."""
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2000,
                                            n=3, stream=True, extra_body={"ignore_eos": True})
    seen = set()
    for chunk in stream:
        seen.update(c.index for c in chunk.choices)
        if len(seen) == 3:
            break
    wait_for(lambda: decode_running(cluster) >= 3, 10, "decode running the three choices")
    stream.close()
    wait_for(lambda: decode_running(cluster) == 0, 10, "decode freeing the three choices")
