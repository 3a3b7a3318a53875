"""Request-body limits: size, nesting depth and slow bodies are refused with OpenAI errors."""

import asyncio
import json

import httpx
import pytest
from fastapi import FastAPI, Request

from services.scheduler.limits import BodyLimits, json_shape
from supernode.config import ApiConfig


def test_json_shape_ignores_brackets_in_strings() -> None:
    """Depth and object counts cover arrays/objects only, not brackets inside strings (with
    escaped quotes and backslashes)."""
    assert json_shape(b'{"a": [1, 2]}') == (2, 1)
    assert json_shape(b'{"a": "[[[[{{{"}') == (1, 1)
    assert json_shape(b'{"a": "\\"[[[", "b": {}}') == (2, 2)
    assert json_shape(b'{"a": "x\\\\", "b": [{}]}') == (3, 2)
    assert json_shape(b"[" * 1000 + b"]" * 1000) == (1000, 0)
    assert json_shape(b"17") == (0, 0)


def app(limits: ApiConfig) -> FastAPI:
    api = FastAPI()
    api.add_middleware(BodyLimits, limits=limits)

    @api.post("/echo")
    async def echo(request: Request) -> dict:
        return {"n": len(await request.body())}

    return api


@pytest.mark.parametrize("body, status", [
    (b"x" * 2000, 413),
    (b"[" + b"{}," * 20 + b"{}]", 400),
    (b"[" * 40 + b"]" * 40, 400),
    (b'{"ok": [1]}', 200),
])
async def test_bodies_over_the_limits_are_refused(body: bytes, status: int) -> None:
    """Over-size and over-deep bodies get 413 / 400 in OpenAI's error shape; others pass."""
    limits = ApiConfig(max_body_bytes=1000, max_json_depth=32, max_json_objects=20)
    transport = httpx.ASGITransport(app=app(limits))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/echo", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    if status != 200:
        assert r.json()["error"]["code"] == status and r.headers["connection"] == "close"


async def test_a_declared_huge_body_is_refused_before_reading() -> None:
    """Content-Length over the limit is answered at once, without receiving anything."""
    sent: list[dict] = []

    async def receive() -> dict:
        raise AssertionError("the body must not be read")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/echo", "headers": [
        (b"content-length", str(2**30).encode())]}
    await BodyLimits(app(ApiConfig()), ApiConfig())(scope, receive, send)
    assert sent[0]["status"] == 413


async def test_a_slow_body_is_cut_off() -> None:
    """A body still incomplete at body_read_timeout_s gets 408 instead of holding on."""
    sent: list[dict] = []
    chunks = [{"type": "http.request", "body": b"{", "more_body": True}]

    async def receive() -> dict:
        if chunks:
            return chunks.pop()
        await asyncio.sleep(3600)
        raise AssertionError

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/echo",
             "headers": [(b"content-length", b"100")]}
    limits = ApiConfig(body_read_timeout_s=0.2)
    await asyncio.wait_for(BodyLimits(app(limits), limits)(scope, receive, send), 30)
    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"])["error"]["code"] == 408
