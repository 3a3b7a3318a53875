"""Request-body limits, enforced before any route sees the body (ASGI middleware).

Each request body is received whole, within `ApiConfig.max_body_bytes` (413: at once when
Content-Length says so, else as soon as the bytes exceed it) and `body_read_timeout_s` (408:
a client that declares a large body and trickles it is cut off), and checked for nesting
deeper than `max_json_depth` or with more than `max_json_objects` objects (400) before JSON
parsing and validation, which hold the event loop (and the GIL) for as long as they take. The route then reads the buffered body as usual. Errors are OpenAI error JSON and
close the connection, so an unread remainder is never waited for.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.scheduler.openai_api import ApiError
from supernode.config import ApiConfig


def json_shape(body: bytes) -> tuple[int, int]:
    """(deepest nesting of arrays/objects, number of objects) of a JSON text, brackets inside
    strings ignored; a few vectorised passes, whatever the content (no parsing)."""
    if body.count(b"[") + body.count(b"{") <= 1:
        return body.count(b"[") + body.count(b"{"), body.count(b"{")
    if b"\\" in body:  # drop escaped backslashes, then escaped quotes: the rest delimit strings
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    codes = np.frombuffer(body, dtype=np.uint8)
    outside = (np.cumsum(codes == ord('"'), dtype=np.uint8) & 1) == 0  # parity survives wrap
    opens = ((codes == ord("[")) | (codes == ord("{"))) & outside
    closes = ((codes == ord("]")) | (codes == ord("}"))) & outside
    depth = np.cumsum(opens.astype(np.int32) - closes.astype(np.int32)).max(initial=0)
    return int(depth), int(np.count_nonzero((codes == ord("{")) & outside))


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
            if self._declares_json(scope):
                await self._check_shape(body)
        except ApiError as e:
            await _send_error(send, e)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _check_shape(self, body: bytes) -> None:
        limits = self.limits
        num_open = body.count(b"[") + body.count(b"{")
        if num_open <= limits.max_json_depth and num_open <= limits.max_json_objects:
            return  # too few brackets to break either limit (the common case)
        # numpy releases the GIL over large arrays: a big body is measured off the event loop
        depth, num_objects = (json_shape(body) if len(body) < 2**16
                              else await asyncio.to_thread(json_shape, body))
        if depth > self.limits.max_json_depth:
            raise ApiError(400, f"request JSON is nested deeper than "
                           f"{self.limits.max_json_depth} levels")
        if num_objects > self.limits.max_json_objects:
            raise ApiError(400, f"request JSON has {num_objects} objects, more than "
                           f"{self.limits.max_json_objects}")

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
