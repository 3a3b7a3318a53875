"""Starting a grpc.aio server with the standard health service, and opening channels.

The cluster token: when a process is given one, its server refuses every call that does not
carry it (UNAUTHENTICATED), and every channel it opens attaches it, as the `authorization:
Bearer <token>` metadata gRPC proxies recognise. The standard health service stays open, so
probes (kubelet's native gRPC probes, compose healthchecks) need no secret; it reveals only
SERVING or NOT_SERVING. The token authenticates the caller as a member of the cluster; it does
not encrypt (channels are plaintext HTTP/2), see docs/security.md.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

MAX_MESSAGE_BYTES = 64 * 2**20
KEEPALIVE_TIME_MS = 20_000
"""How often a peer pings an idle connection (dead peers are noticed within ~30 s)."""


def channel_options(keepalive_time_ms: int = KEEPALIVE_TIME_MS) -> list[tuple[str, int]]:
    """Options of every channel (and, with server_options, of every server)."""
    return [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", 10_000)]


def server_options(keepalive_time_ms: int = KEEPALIVE_TIME_MS) -> list[tuple[str, int]]:
    """A server accepts its peers' keepalive pings, open call or not. gRPC's default accepts
    one ping per 5 minutes without data and sends GOAWAY "too_many_pings" at the third: a
    token stream that carried nothing for a while (an idle cluster) broke every ~2 minutes,
    and its decode worker left routing until it registered again."""
    return [*channel_options(keepalive_time_ms),
            ("grpc.http2.min_ping_interval_without_data_ms", keepalive_time_ms // 2),
            ("grpc.keepalive_permit_without_calls", 1)]
AUTH_METADATA_KEY = "authorization"
OPEN_METHOD_PREFIX = "/grpc.health.v1.Health/"
"""Methods callable without the cluster token: the standard health service only."""


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer

    async def set_serving(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set("", status)

    async def stop(self, grace_s: float = 2.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


async def start_grpc_server(
    add_servicers: list[Callable[[grpc.aio.Server], None]], host: str, port: int,
    cluster_token: str | None = None,
) -> GrpcServer:
    """Bind, register the servicers and the health service, start; SERVING once started.
    With `cluster_token`, every call but a health check must carry it."""
    interceptors = [ClusterTokenInterceptor(cluster_token)] if cluster_token else []
    server = grpc.aio.server(options=server_options(), interceptors=interceptors)
    for add in add_servicers:
        add(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC server to {host}:{port}")
    await server.start()
    result = GrpcServer(server, bound, health_servicer)
    await result.set_serving(True)
    return result


def insecure_channel(address: str, cluster_token: str | None = None) -> grpc.aio.Channel:
    """A plaintext channel to `address` that attaches `cluster_token` (if any) to every call."""
    interceptors = _token_interceptors(cluster_token) if cluster_token else None
    return grpc.aio.insecure_channel(address, options=channel_options(),
                                     interceptors=interceptors)


def _bearer(token: str) -> str:
    return f"Bearer {token}"


class ClusterTokenInterceptor(grpc.aio.ServerInterceptor):
    """Answers UNAUTHENTICATED to any call without `authorization: Bearer <token>`, except the
    health service's. The comparison takes the same time wherever the tokens differ."""

    def __init__(self, token: str) -> None:
        self._expected = _bearer(token).encode()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if (handler is None or details.method.startswith(OPEN_METHOD_PREFIX)
                or self._authorized(details.invocation_metadata)):
            return handler
        return _refusing(handler)

    def _authorized(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
        for key, value in metadata or ():
            if key == AUTH_METADATA_KEY:
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected)
        return False


async def _refuse(request: object, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                        "missing or wrong cluster token (authorization: Bearer ...)")


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same streaming kind as `handler` that refuses the call."""
    if handler.request_streaming and handler.response_streaming:
        make = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        make = grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        make = grpc.unary_stream_rpc_method_handler
    else:
        make = grpc.unary_unary_rpc_method_handler
    return make(_refuse, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


class _AttachToken:
    """Adds the authorization metadata to a call's details (one instance per call kind, since
    grpc.aio files each interceptor under a single kind)."""

    def __init__(self, token: str) -> None:
        self._entry = (AUTH_METADATA_KEY, _bearer(token))

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._entry)
        return details._replace(metadata=metadata)

    async def _call(self, continuation: Any, details: grpc.aio.ClientCallDetails,
                    request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryUnary(_AttachToken, grpc.aio.UnaryUnaryClientInterceptor):
    intercept_unary_unary = _AttachToken._call


class _UnaryStream(_AttachToken, grpc.aio.UnaryStreamClientInterceptor):
    intercept_unary_stream = _AttachToken._call


class _StreamUnary(_AttachToken, grpc.aio.StreamUnaryClientInterceptor):
    intercept_stream_unary = _AttachToken._call


class _StreamStream(_AttachToken, grpc.aio.StreamStreamClientInterceptor):
    intercept_stream_stream = _AttachToken._call


def _token_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    return [kind(token) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
