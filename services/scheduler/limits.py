"""Request-body limits, enforced before any route sees the body (ASGI middleware).

Each request body is received whole, within `ApiConfig.max_body_bytes` (413: at once when
Content-Length says so, else as soon as the bytes exceed it) and `body_read_timeout_s` (408:
a client that declares a large body and trickles it is cut off), and checked for nesting
deeper than `max_json_depth` (400) before JSON parsing, whose recursion it would otherwise
exhaust. The route then reads the buffered body as usual. Errors are OpenAI error JSON and
close the connection, so an unread remainder is never waited for.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.scheduler.openai_api import ApiError
from supernode.config import ApiConfig

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays/objects in a JSON text (brackets inside strings ignored);
    linear time in C (regex and numpy), whatever the nesting."""
    if body.count(b"[") + body.count(b"{") <= 1:
        return body.count(b"[") + body.count(b"{")
    bare = _STRING.sub(b"", body) if b'"' in body else body
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = ((codes == ord("[")) | (codes == ord("{"))).astype(np.int32)
    steps -= ((codes == ord("]")) | (codes == ord("}"))).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


class BodyLimits:
    """ASGI middleware: receive each request body whole within the limits, then replay it."""

    def __init__(self, app: ASGIApp, limits: ApiConfig) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._receive_body(scope, receive)
            if body is None:
                return  # the client went away
            if self._declares_json(scope) and json_depth(body) > self.limits.max_json_depth:
                raise ApiError(400, f"request JSON is nested deeper than "
                               f"{self.limits.max_json_depth} levels")
        except ApiError as e:
            await _send_error(send, e)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _receive_body(self, scope: Scope, receive: Receive) -> bytes | None:
        limit = self.limits.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            raise ApiError(413, f"request body of {declared} bytes exceeds the limit of "
                           f"{limit} bytes")
        deadline = time.monotonic() + self.limits.body_read_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                raise ApiError(408, f"request body not received within "
                               f"{self.limits.body_read_timeout_s:g} s") from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _declares_json(scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"content-type":
                return b"json" in value.lower()
        return True  # FastAPI parses a body without a content type as JSON


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise ApiError(400, "invalid Content-Length header") from None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body first, then the real channel (a streaming response listens on it for
    the client's disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(send: Send, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                          (b"content-length", str(len(body)).encode()),
                                          (b"connection", b"close")]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
