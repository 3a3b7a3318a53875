"""vLLM's and OpenAI's surface on a running cluster: /tokenize, tools, JSON, logprobs, echo,
batched prompts, temperature, error JSON for unknown routes."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e
MODEL = "deepseek-r1"
CHINESE = "人工智能是计算机科学的一个分支，它企图了解智能的实质。"
NUMBER = "3141592653589793238462643383279502884197"
CODE = "def area(r):\n    return 3.14159 * r ** 2\n"
WEATHER = {"type": "object", "properties": {
    "city": {"type": "string", "maxLength": 20},
    "days": {"type": "integer", "minimum": 1, "maximum": 7},
    "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "days"],
    "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)


@pytest.mark.parametrize("text", [CHINESE, NUMBER, CODE])
def test_tokenize_counts_equal_prompt_tokens(client: openai.OpenAI, cluster, text: str) -> None:
    """POST /tokenize (prompt, and chat messages) returns DeepSeek ids whose count equals
    usage.prompt_tokens of a completion and of a chat request with the same content."""
    url = cluster.endpoint
    by_prompt = httpx.post(f"{url}/tokenize", json={"model": MODEL, "prompt": text}).json()
    messages = [{"role": "user", "content": text}]
    by_chat = httpx.post(f"{url}/tokenize", json={"model": MODEL, "messages": messages}).json()
    completion = client.completions.create(model=MODEL, prompt=text, max_tokens=1)
    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1)
    assert by_prompt["count"] == len(by_prompt["tokens"]) == completion.usage.prompt_tokens
    assert by_chat["count"] == len(by_chat["tokens"]) == chat.usage.prompt_tokens
    assert by_prompt["tokens"][0] == 0 and by_prompt["max_model_len"] == 163_840
    back = httpx.post(f"{url}/detokenize", json={"model": MODEL,
                                                  "tokens": by_prompt["tokens"]}).json()
    assert back == {"prompt": text}


def finished(cluster, reason: str) -> float:
    """The scheduler's vllm:request_success count for `reason`."""
    text = httpx.get(f"{cluster.endpoint}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text)
               if f.name == "vllm:request_success" for s in f.samples
               if s.name.endswith("_total") and s.labels.get("finished_reason") == reason)


def test_tool_choice_required_returns_valid_arguments(client: openai.OpenAI, cluster) -> None:
    """tool_choice "required": a tool call whose arguments validate against the tool's schema,
    finish_reason tool_calls; streamed, the argument deltas join to a valid call too. The
    scheduler counts both as finished with "stop" (vLLM's reasons: a model ends a call with
    EOS), never as failed."""
    stops = finished(cluster, "stop")
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS,
                                       tool_choice="required")
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS,
                                                 tool_choice="required", stream=True))
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    jsonschema.validate(json.loads("".join(d.function.arguments or "" for d in deltas)), WEATHER)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert "supernode" in chunks[-1].model_extra
    assert finished(cluster, "stop") == stops + 2
    assert finished(cluster, "tool_calls") == 0


def test_a_short_max_tokens_truncates_the_call(client: openai.OpenAI) -> None:
    """A tool call longer than max_tokens is cut, with finish_reason length (as real servers)."""
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                       tools=TOOLS, tool_choice="required", max_tokens=5)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5


def test_json_schema_content_validates(client: openai.OpenAI) -> None:
    """response_format json_schema: the content is JSON valid against the schema; json_object
    gives a JSON object."""
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "forecast"}],
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), WEATHER)
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                       response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_temperature_zero_is_greedy_and_temperature_changes_text(client: openai.OpenAI) -> None:
    """Without a seed, temperature 0 repeats the same text for the same prompt; with a seed,
    another temperature gives another text."""
    def text(**kw) -> str:
        return client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=12,
                                         extra_body={"ignore_eos": True}, **kw).choices[0].text

    assert text(temperature=0) == text(temperature=0)
    assert text(temperature=0.7, seed=3) != text(temperature=1.3, seed=3)


def test_logprobs_and_echo(client: openai.OpenAI) -> None:
    """Completions logprobs (with echo: the prompt's tokens first, the first without a
    logprob) and chat logprobs with top_logprobs are well formed."""
    r = client.completions.create(model=MODEL, prompt="Hello world", max_tokens=4, logprobs=2,
                                  echo=True, extra_body={"ignore_eos": True})
    choice = r.choices[0]
    assert choice.text.startswith("Hello world")
    lp = choice.logprobs
    assert len(lp.tokens) == r.usage.prompt_tokens + 4 == len(lp.token_logprobs)
    assert lp.token_logprobs[0] is None and all(x < 0 for x in lp.token_logprobs[1:])
    assert "".join(lp.tokens) == choice.text
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user",
                                          "content": "hi"}], max_tokens=3, logprobs=True,
                                          top_logprobs=3, extra_body={"ignore_eos": True})
    entries = chat.choices[0].logprobs.content
    assert len(entries) == 3 and all(len(e.top_logprobs) >= 3 for e in entries)
    assert "".join(e.token for e in entries) == chat.choices[0].message.content


def test_batched_prompts_give_one_choice_each(client: openai.OpenAI) -> None:
    """A list of prompts: one choice per prompt, usage summed; streamed, every chunk names
    its choice and each choice ends with its own finish_reason."""
    prompts = ["first prompt", "the second prompt", "third"]
    r = client.completions.create(model=MODEL, prompt=prompts, max_tokens=3,
                                  extra_body={"ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens == 9
    assert r.usage.prompt_tokens == sum(client.completions.create(
        model=MODEL, prompt=p, max_tokens=1).usage.prompt_tokens for p in prompts)
    chunks = list(client.completions.create(model=MODEL, prompt=prompts, max_tokens=3,
                                            stream=True, extra_body={"ignore_eos": True}))
    finals = [c.choices[0].index for c in chunks if c.choices[0].finish_reason]
    assert sorted(finals) == [0, 1, 2]


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nope", 404), ("POST", "/v1/nothing", 404), ("GET", "/v1/completions", 405),
    ("GET", "/v1/models/gpt-5", 404)])
def test_errors_are_openai_json(cluster, method: str, path: str, status: int) -> None:
    """Unknown routes, wrong methods and unknown models answer OpenAI's error JSON."""
    r = httpx.request(method, f"{cluster.endpoint}{path}", timeout=10)
    assert r.status_code == status and r.json()["error"]["code"] == status


def test_version_and_model_card(cluster) -> None:
    """/version names the package version; /v1/models/{id} is the served model's card."""
    assert httpx.get(f"{cluster.endpoint}/version").json()["version"]
    card = httpx.get(f"{cluster.endpoint}/v1/models/{MODEL}").json()
    assert card["id"] == MODEL and card["max_model_len"] == 163_840
