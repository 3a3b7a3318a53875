"""A tiny OpenAI-shaped streaming server with scripted, known delays, for the loadgen tests.

Run as a script: it binds 127.0.0.1 on a free port, prints `PORT <n>` on stdout, and serves
until terminated. Each request carries its script in the body's `script` object (all optional):
  ttft_ms                    delay before the first chunk
  ttft_ms_per_prompt_token   added to ttft_ms per prompt token (so TTFT varies per request)
  itl_ms                     gap between chunks (deadline-based, no drift)
  tokens_per_chunk           tokens reported per chunk in usage (default 1)
  usage                      send the final usage chunk (default true)
  serialize                  hold one server-wide slot for the whole request (a 1-server queue)
Faults are chosen by the first prompt token id: 1 -> HTTP 500 with an OpenAI error body;
2 -> the connection drops after 2 chunks; 3 -> an error event in the stream;
4 -> the stream closes cleanly without finish_reason or [DONE].
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

FAULT_HTTP_500, FAULT_DROP, FAULT_ERROR_EVENT, FAULT_TRUNCATE = 1, 2, 3, 4


def _sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _chunk(text: str, chat: bool, finish: str | None = None) -> dict:
    choice = {"index": 0, "finish_reason": finish}
    if chat:
        choice["delta"] = {"content": text}
    else:
        choice["text"] = text
    return {"id": "cmpl-test", "object": "text_completion", "choices": [choice]}


class DroppedConnection(Exception):
    """Raised inside the body iterator so uvicorn aborts the response mid-stream."""


def build_app() -> FastAPI:
    app = FastAPI()
    slot = asyncio.Semaphore(1)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await _serve(await request.json(), chat=False, slot=slot)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await _serve(await request.json(), chat=True, slot=slot)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "scripted-model", "object": "model"}]}

    return app


async def _serve(body: dict, chat: bool, slot: asyncio.Semaphore):
    started = time.perf_counter()
    prompt = body["messages"][0]["content"] if chat else body["prompt"]
    fault = prompt[0] if isinstance(prompt, list) and prompt else None
    if fault == FAULT_HTTP_500:
        error = {"message": "scripted failure", "type": "InternalServerError", "code": 500}
        return JSONResponse({"error": error, "object": "error"}, status_code=500)
    script = body.get("script", {})
    num_prompt_tokens = len(prompt) if isinstance(prompt, list) else len(prompt.split())
    stream = _stream(body, script, chat, fault, num_prompt_tokens, started, slot)
    return StreamingResponse(stream, media_type="text/event-stream")


async def _stream(body, script, chat, fault, num_prompt_tokens, started, slot):
    if script.get("serialize"):
        await slot.acquire()
        started = time.perf_counter()
    try:
        async for part in _chunks(body, script, chat, fault, num_prompt_tokens, started):
            yield part
    finally:
        if script.get("serialize"):
            slot.release()


async def _chunks(body, script, chat, fault, num_prompt_tokens, started):
    ttft_s = (
        script.get("ttft_ms", 0) + script.get("ttft_ms_per_prompt_token", 0) * num_prompt_tokens
    ) / 1e3
    itl_s = script.get("itl_ms", 0) / 1e3
    per_chunk = script.get("tokens_per_chunk", 1)
    num_chunks = max(1, body["max_tokens"] // per_chunk)
    for i in range(num_chunks):
        await asyncio.sleep(max(0.0, started + ttft_s + i * itl_s - time.perf_counter()))
        if fault == FAULT_DROP and i == 2:
            raise DroppedConnection("scripted drop")
        if fault == FAULT_ERROR_EVENT and i == 1:
            yield _sse({"error": {"message": "scripted stream error", "code": 500}})
            return
        finish = "length" if i == num_chunks - 1 and fault != FAULT_TRUNCATE else None
        yield _sse(_chunk(f" t{i}", chat, finish))
    if fault == FAULT_TRUNCATE:
        return
    if script.get("usage", True):
        usage = {"prompt_tokens": num_prompt_tokens, "completion_tokens": num_chunks * per_chunk}
        yield _sse({"id": "cmpl-test", "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(build_app(), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
