"""A bare FastAPI/uvicorn SSE server: the ceiling any Python OpenAI front end can reach here.

POST /v1/completions (or /v1/chat/completions) streams `max_tokens` OpenAI-shaped chunks,
chunk i at request arrival + i * interval (deadline-based sleeps, so gaps do not drift), then a
usage chunk and `[DONE]`. The interval is `--interval-ms`, or the body's `interval_ms`. Nothing
else happens per request: no model, no scheduling, no gRPC. Run as a script; it binds
127.0.0.1 on a free port (or `--port`), prints `PORT <n>` and serves until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


def build_app(default_interval_ms: float) -> FastAPI:
    app = FastAPI()

    async def serve(request: Request, chat: bool) -> StreamingResponse:
        arrived_at = time.perf_counter()
        body = await request.json()
        interval_s = float(body.get("interval_ms", default_interval_ms)) / 1e3
        stream = _chunks(int(body.get("max_tokens", 16)), interval_s, arrived_at, chat)
        return StreamingResponse(stream, media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await serve(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await serve(request, chat=True)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "bare-sse", "object": "model"}]}

    return app


async def _chunks(num_tokens: int, interval_s: float, arrived_at: float, chat: bool):
    created = int(time.time())
    for i in range(num_tokens):
        await asyncio.sleep(max(0.0, arrived_at + i * interval_s - time.perf_counter()))
        choice = {"index": 0, "finish_reason": "length" if i == num_tokens - 1 else None}
        if chat:
            choice["delta"] = {"content": f" tok{i}"}
        else:
            choice["text"] = f" tok{i}"
        chunk = {
            "id": "cmpl-bare",
            "object": "text_completion",
            "created": created,
            "model": "bare-sse",
            "choices": [choice],
        }
        yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
    usage = {"prompt_tokens": 0, "completion_tokens": num_tokens, "total_tokens": num_tokens}
    yield (
        b"data: "
        + json.dumps({"id": "cmpl-bare", "choices": [], "usage": usage}).encode()
        + b"\n\n"
    )
    yield b"data: [DONE]\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval-ms", type=float, default=50.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        build_app(args.interval_ms),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
