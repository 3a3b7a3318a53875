"""EMS made unreachable on demand (the `ems_unreachable` injected fault).

`GatedEmsServicer` sits in front of the real servicer. While the fault lasts every RPC is
either refused at once with UNAVAILABLE (mode "refuse": a host that resets connections) or
left unanswered until the caller's deadline passes (mode "blackhole": a frozen host or a
partition, the case that costs callers their timeouts). Calls that arrive after the fault
clears, or whose blackhole outlives it, are served normally. Every EmsService RPC is gated,
model loads included (a loading worker then loads without EMS). The gRPC health service is
left alone: the fault is on the data path, as a partition between prefill and EMS would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from prometheus_client import CollectorRegistry, Counter

from services.ems.servicer import EmsServicer
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

MODES = ("refuse", "blackhole")


class GatedEmsServicer(pb_grpc.EmsServiceServicer):
    """`inner`'s RPCs, behind the unreachable gate (`set_mode`)."""

    def __init__(self, inner: EmsServicer, registry: CollectorRegistry) -> None:
        self.inner = inner
        self.mode: str | None = None
        self._open = asyncio.Event()
        self._open.set()
        self._refused = Counter("supernode_ems_fault_refused_calls",
                                "EMS calls refused or left unanswered by an injected fault.",
                                ("rpc", "mode"), registry=registry)

    def set_mode(self, mode: str | None) -> None:
        """"refuse" or "blackhole" makes EMS unreachable; None serves again."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"unknown unreachable mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        if mode is None:
            self._open.set()
        else:
            self._open.clear()

    async def Lookup(self, request: pb.LookupRequest, context: grpc.aio.ServicerContext
                     ) -> pb.LookupResponse:
        await self._gate("Lookup", context)
        return await self.inner.Lookup(request, context)

    async def Get(self, request: pb.GetRequest, context: grpc.aio.ServicerContext
                  ) -> AsyncIterator[pb.KvBlock]:
        await self._gate("Get", context)
        async for block in self.inner.Get(request, context):
            yield block

    async def Put(self, request_iterator: AsyncIterator[pb.KvBlock],
                  context: grpc.aio.ServicerContext) -> pb.PutResponse:
        await self._gate("Put", context)
        return await self.inner.Put(request_iterator, context)

    async def Stats(self, request: pb.StatsRequest, context: grpc.aio.ServicerContext
                    ) -> pb.StatsResponse:
        await self._gate("Stats", context)
        return await self.inner.Stats(request, context)

    async def ModelStatus(self, request: pb.ModelImageRequest,
                          context: grpc.aio.ServicerContext) -> pb.ModelStatusResponse:
        await self._gate("ModelStatus", context)
        return await self.inner.ModelStatus(request, context)

    async def PrefetchModel(self, request: pb.ModelImageRequest,
                            context: grpc.aio.ServicerContext) -> pb.PrefetchModelResponse:
        await self._gate("PrefetchModel", context)
        return await self.inner.PrefetchModel(request, context)

    async def LoadModel(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[pb.ModelLoadEvent]:
        await self._gate("LoadModel", context)
        async for event in self.inner.LoadModel(request, context):
            yield event

    async def _gate(self, rpc: str, context: grpc.aio.ServicerContext) -> None:
        mode = self.mode
        if mode is None:
            return
        self._refused.labels(rpc=rpc, mode=mode).inc()
        if mode == "blackhole":
            remaining = context.time_remaining()
            try:  # past the caller's deadline (plus a margin, so it sees DEADLINE_EXCEEDED)
                await asyncio.wait_for(self._open.wait(),
                                       timeout=None if remaining is None else remaining + 0.5)
                return  # the fault cleared while the caller still waited
            except TimeoutError:
                pass
        await context.abort(grpc.StatusCode.UNAVAILABLE, "EMS unreachable (injected fault)")
