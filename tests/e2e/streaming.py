"""A small raw-SSE client for timing checks (httpx, no SDK parsing in the measured path)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class StreamResult:
    ttft_s: float
    e2e_s: float
    num_chunks: int
    text: str
    usage: dict[str, Any]
    supernode: dict[str, Any]
    finish_reason: str | None
    chunk_times_s: list[float] = field(default_factory=list)

    @property
    def tpot_s(self) -> float:
        n = self.usage["completion_tokens"]
        return (self.e2e_s - self.ttft_s) / (n - 1)


async def stream_completion(client: httpx.AsyncClient, base_url: str, body: dict[str, Any]
                            ) -> StreamResult:
    """POST a streaming completion; time the first and last content chunks."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    start = time.monotonic()
    first = last = None
    text, usage, ext, finish, times = [], {}, {}, None, []
    async with client.stream("POST", f"{base_url}/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if chunk["choices"]:
                now = time.monotonic() - start
                first = now if first is None else first
                last = now
                times.append(now)
                text.append(chunk["choices"][0]["text"])
                finish = chunk["choices"][0]["finish_reason"] or finish
            else:
                usage, ext = chunk["usage"], chunk["supernode"]
    assert first is not None and last is not None, "no content chunk arrived"
    return StreamResult(first, last, len(times), "".join(text), usage, ext, finish, times)
