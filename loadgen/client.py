"""Streaming OpenAI client on aiohttp: sends one request, times its chunks, never raises.

Timing follows vLLM's `bench serve`: the clock starts just before the POST; TTFT is the arrival
of the first chunk that carries text; each later text chunk adds one ITL gap; the request's
latency ends at its last text chunk. aiohttp is used because an httpx streaming client
saturates near 3-4k chunks/s on this kind of machine (see shared/reference/measured-here.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import aiohttp

from loadgen.config import EndpointConfig
from loadgen.types import RequestResult, SampleRequest
from loadgen.workloads.tokens import render_text

MAX_ERROR_CHARS = 2000
SERVER_DETAILS_KEY = "supernode"
"""A response's non-standard top-level object kept on `RequestResult.server_details`."""


def make_session(
    endpoint: EndpointConfig, max_connections: int | None = None
) -> aiohttp.ClientSession:
    """One pooled session for a whole run; `max_connections` None means no pool limit."""
    connector = aiohttp.TCPConnector(
        limit=max_connections or 0, limit_per_host=max_connections or 0, enable_cleanup_closed=True
    )
    timeout = aiohttp.ClientTimeout(total=endpoint.request_timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=True)


def request_body(
    endpoint: EndpointConfig, sample: SampleRequest, tokens_as_ids: bool = True,
    seed: int | None = None,
) -> dict:
    """The JSON body for `sample`: token ids go out as `prompt: [int, ...]` on completions;
    chat (and `tokens_as_ids=False`) gets them rendered as text. `seed`: the request's seed."""
    prompt = sample.prompt
    if isinstance(prompt, tuple) and (endpoint.is_chat or not tokens_as_ids):
        prompt = render_text(prompt)
    body: dict = {
        "model": endpoint.model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": endpoint.temperature,
        "max_tokens": sample.expected_output_len,
    }
    if endpoint.is_chat:
        body["messages"] = [{"role": "user", "content": prompt}]
        body["max_completion_tokens"] = sample.expected_output_len
    else:
        body["prompt"] = list(prompt) if isinstance(prompt, tuple) else prompt
    if endpoint.ignore_eos:
        body["ignore_eos"] = True
    if seed is not None:
        body["seed"] = seed
    body.update(endpoint.extra_body)
    return body


def request_headers(endpoint: EndpointConfig) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **endpoint.headers}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    return headers


@dataclass
class _StreamState:
    """What one SSE stream has shown so far; mutated only by `on_line`."""

    chat: bool
    started_at: float
    ttft_s: float | None = None
    last_token_at: float | None = None
    itls_s: list[float] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    num_text_chunks: int = 0
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    server_details: dict = field(default_factory=dict)
    finished: bool = False
    done: bool = False
    error: str = ""

    def on_line(self, raw: bytes, now: float) -> None:
        line = raw.strip()
        if not line.startswith(b"data:"):
            return
        payload = line[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return
        self.on_event(json.loads(payload), now)

    def on_event(self, event: dict, now: float) -> None:
        if event.get("error"):
            self.error = "stream error: " + json.dumps(event["error"])[:MAX_ERROR_CHARS]
            self.done = True
            return
        if usage := event.get("usage"):
            self.completion_tokens = usage.get("completion_tokens", self.completion_tokens)
            self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
            details = usage.get("prompt_tokens_details") or {}
            self.cached_tokens = details.get("cached_tokens", self.cached_tokens)
        if isinstance(details := event.get(SERVER_DETAILS_KEY), dict):
            self.server_details = details
        for choice in event.get("choices") or ():
            text = _choice_text(choice, self.chat)
            if text:
                self._on_text(text, now)
            if choice.get("finish_reason"):
                self.finished = True

    def _on_text(self, text: str, now: float) -> None:
        if self.ttft_s is None:
            self.ttft_s = now - self.started_at
        else:
            self.itls_s.append(now - self.last_token_at)
        self.last_token_at = now
        self.num_text_chunks += 1
        self.text_parts.append(text)


def _choice_text(choice: dict, chat: bool) -> str:
    if not chat:
        return choice.get("text") or ""
    delta = choice.get("delta") or {}
    return delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""


async def send_request(
    session: aiohttp.ClientSession,
    endpoint: EndpointConfig,
    sample: SampleRequest,
    run_started_at: float,
    tokens_as_ids: bool = True,
    seed: int | None = None,
) -> RequestResult:
    """Send `sample`, stream the answer, and return what was observed. Transport errors, HTTP
    errors, error events and truncated streams all come back as a failed result with the
    error text kept; nothing is raised (except cancellation)."""
    body = request_body(endpoint, sample, tokens_as_ids, seed)
    started_at = time.perf_counter()
    state = _StreamState(chat=endpoint.is_chat, started_at=started_at)
    try:
        async with session.post(
            endpoint.api_url, json=body, headers=request_headers(endpoint)
        ) as resp:
            if resp.status != 200:
                state.error = f"HTTP {resp.status}: {(await resp.text())[:MAX_ERROR_CHARS]}"
            else:
                async for line in resp.content:
                    state.on_line(line, time.perf_counter())
                    if state.done:
                        break
    except TimeoutError:
        state.error = f"timeout after {endpoint.request_timeout_s:g} s"
    except (aiohttp.ClientError, json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        state.error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS] or type(exc).__name__
    return _result(state, sample, started_at - run_started_at)


def _result(
    state: _StreamState, sample: SampleRequest, started_at_s: float
) -> RequestResult:
    error = state.error
    if not error and state.ttft_s is None:
        error = "stream ended without any text chunk"
    elif not error and not (state.finished or state.done):
        error = "stream ended before a finish_reason or [DONE]"
    end = state.last_token_at if state.last_token_at is not None else time.perf_counter()
    usage_reported = state.completion_tokens is not None
    return RequestResult(
        success=not error,
        prompt_len=state.prompt_tokens if state.prompt_tokens is not None else sample.prompt_len,
        expected_output_len=sample.expected_output_len,
        output_tokens=state.completion_tokens if usage_reported else state.num_text_chunks,
        ttft_s=state.ttft_s,
        latency_s=end - state.started_at,
        started_at_s=started_at_s,
        itls_s=tuple(state.itls_s),
        error=error,
        generated_text="".join(state.text_parts),
        usage_reported=usage_reported,
        server_details=state.server_details,
        cached_tokens=state.cached_tokens,
    )
