"""What the cluster token costs on the gRPC plane: calls/s and streamed messages/s through
`start_grpc_server` + `insecure_channel`, with and without a token, side by side.

    .venv/bin/python bench/grpc_auth_overhead.py [--rounds 7] [--calls 2000] [--messages 30000]

Each round runs both variants back to back (order alternating), on one event loop, server and
client in this process over loopback; the report gives each variant's median over the rounds
and the ratio token / none. Unary calls stand for Admit, Prefill, Lookup; the server stream for
StreamTokens (one message per decode step).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import grpc

from services.common.grpc_server import insecure_channel, start_grpc_server

PAYLOAD = b"x" * 64
TOKEN = "bench-cluster-token-0123456789abcdef"


def _add(num_messages: int):  # type: ignore[no-untyped-def]
    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for _ in range(num_messages):
            yield PAYLOAD

    async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    def add(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.B", {
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
            "Unary": grpc.unary_unary_rpc_method_handler(unary)}),))
    return add


async def _one(token: str | None, calls: int, messages: int) -> tuple[float, float]:
    server = await start_grpc_server([_add(messages)], "127.0.0.1", 0, cluster_token=token)
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}", token) as channel:
            unary, stream = channel.unary_unary("/bench.B/Unary"), channel.unary_stream(
                "/bench.B/Stream")
            await unary(PAYLOAD)  # connect first
            start = time.perf_counter()
            for _ in range(calls):
                await unary(PAYLOAD)
            calls_per_s = calls / (time.perf_counter() - start)
            start, n = time.perf_counter(), 0
            async for _ in stream(PAYLOAD):
                n += 1
            return calls_per_s, n / (time.perf_counter() - start)
    finally:
        await server.stop(0)


async def main(rounds: int, calls: int, messages: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {"none": [], "token": []}
    for r in range(rounds):
        order = ("none", "token") if r % 2 == 0 else ("token", "none")
        for name in order:
            results[name].append(await _one(TOKEN if name == "token" else None, calls, messages))
    med = {name: (statistics.median(c for c, _ in v), statistics.median(m for _, m in v))
           for name, v in results.items()}
    print(f"{'variant':<8} {'unary calls/s':>14} {'stream msgs/s':>14}")
    for name, (c, m) in med.items():
        print(f"{name:<8} {c:>14,.0f} {m:>14,.0f}")
    print(f"{'ratio':<8} {med['token'][0] / med['none'][0]:>14.2f} "
          f"{med['token'][1] / med['none'][1]:>14.2f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--messages", type=int, default=30000)
    a = p.parse_args()
    asyncio.run(main(a.rounds, a.calls, a.messages))
