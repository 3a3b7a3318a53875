"""The cluster token on the gRPC plane: servers refuse calls without it (health excepted) and
channels opened with it pass, for every streaming kind the services use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.grpc_server import (
    KEEPALIVE_TIME_MS,
    GrpcServer,
    channel_options,
    insecure_channel,
    server_options,
    start_grpc_server,
)

TOKEN = "cluster-secret-1"
SERVICE = "test.Echo"


async def _unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def _unary_stream(request: bytes, context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[bytes]:
    for _ in range(3):
        yield request


async def _stream_unary(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
                        ) -> bytes:
    return b"".join([r async for r in requests])


async def _stream_stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
                         ) -> AsyncIterator[bytes]:
    async for r in requests:
        yield r


def _add_echo(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(_unary_stream),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(_stream_unary),
        "StreamStream": grpc.stream_stream_rpc_method_handler(_stream_stream),
    }),))


async def _requests() -> AsyncIterator[bytes]:
    for part in (b"a", b"b"):
        yield part


async def _never() -> AsyncIterator[bytes]:
    """A request stream that sends nothing: the refusal must not wait for a first message (and
    the client's own write cannot race the server's status)."""
    await asyncio.Event().wait()
    yield b""


Call = Callable[[grpc.aio.Channel, Callable[[], AsyncIterator[bytes]]], Awaitable[object]]
CALLS: dict[str, Call] = {
    "unary": lambda ch, _: ch.unary_unary(f"/{SERVICE}/Unary")(b"x", timeout=5),
    "unary-stream": lambda ch, _: _collect(ch.unary_stream(f"/{SERVICE}/UnaryStream")(
        b"x", timeout=5)),
    "stream-unary": lambda ch, requests: ch.stream_unary(f"/{SERVICE}/StreamUnary")(
        requests(), timeout=5),
    "stream-stream": lambda ch, requests: _collect(ch.stream_stream(
        f"/{SERVICE}/StreamStream")(requests(), timeout=5)),
}
EXPECTED = {"unary": b"x", "unary-stream": [b"x"] * 3, "stream-unary": b"ab",
            "stream-stream": [b"a", b"b"]}


async def _collect(call: AsyncIterator[bytes]) -> list[bytes]:
    return [m async for m in call]


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    s = await start_grpc_server([_add_echo], "127.0.0.1", 0, cluster_token=TOKEN)
    yield s
    await s.stop(0)


@pytest.mark.parametrize("kind", sorted(CALLS))
async def test_calls_without_the_token_are_unauthenticated(server: GrpcServer,
                                                           kind: str) -> None:
    """A call with no token or a wrong one fails UNAUTHENTICATED, whatever its streaming kind."""
    for token in (None, "wrong-token", TOKEN + "x"):
        async with insecure_channel(f"127.0.0.1:{server.port}", token) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await CALLS[kind](channel, _never)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
            assert "cluster token" in (e.value.details() or "")


@pytest.mark.parametrize("kind", sorted(CALLS))
async def test_channels_opened_with_the_token_pass(server: GrpcServer, kind: str) -> None:
    """A channel opened with the cluster token reaches the servicer for every streaming kind."""
    async with insecure_channel(f"127.0.0.1:{server.port}", TOKEN) as channel:
        assert await CALLS[kind](channel, _requests) == EXPECTED[kind]


async def test_token_joins_the_callers_own_metadata(server: GrpcServer) -> None:
    """The token is added beside metadata the caller passes, not instead of it."""
    seen: list[tuple[str, str]] = []

    async def record(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.extend((k, v) for k, v in context.invocation_metadata() if k.startswith("x-"))
        return request

    s = await start_grpc_server([lambda srv: srv.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("test.Md", {
            "Call": grpc.unary_unary_rpc_method_handler(record)}),))],
        "127.0.0.1", 0, cluster_token=TOKEN)
    try:
        async with insecure_channel(f"127.0.0.1:{s.port}", TOKEN) as channel:
            await channel.unary_unary("/test.Md/Call")(
                b"x", metadata=(("x-supernode-plane", "ub"),), timeout=5)
    finally:
        await s.stop(0)
    assert seen == [("x-supernode-plane", "ub")]


async def test_health_service_stays_open(server: GrpcServer) -> None:
    """Probes need no secret: the standard health check answers SERVING without the token."""
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_without_a_configured_token_calls_pass() -> None:
    """A server started without a token accepts calls with or without one."""
    s = await start_grpc_server([_add_echo], "127.0.0.1", 0)
    try:
        for token in (None, TOKEN):
            async with insecure_channel(f"127.0.0.1:{s.port}", token) as channel:
                assert await CALLS["unary"](channel, _requests) == b"x"
    finally:
        await s.stop(0)


def test_servers_accept_the_keepalive_pings_their_peers_send() -> None:
    """A server takes a ping at least as often as a channel sends one, open call or not: with
    gRPC's defaults an idle token stream was cut (GOAWAY too_many_pings) every ~2 minutes."""
    for keepalive_ms in (KEEPALIVE_TIME_MS, 1_000):
        server = dict(server_options(keepalive_ms))
        channel = dict(channel_options(keepalive_ms))
        assert server["grpc.http2.min_ping_interval_without_data_ms"] \
            <= channel["grpc.keepalive_time_ms"] == keepalive_ms
        assert server["grpc.keepalive_permit_without_calls"] == 1
