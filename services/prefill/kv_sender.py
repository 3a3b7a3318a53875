"""Prefill -> decode KV handoff: the whole KV of a request, once, after prefill (paper §4.3.3).

The modelled time is the true KV size over the RDMA plane; the bytes that actually travel are
a synthetic payload scaled by `payload_scale`, in chunks that each carry a CRC32 the receiver
verifies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from services.common.grpc_server import insecure_channel
from supernode.cache.payload import checksum, make_payload, payload_num_bytes
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc


class KvTransferError(Exception):
    """The decode instance did not accept the KV."""


class KvSender:
    """Streams KV to decode instances, one channel per decode address."""

    def __init__(self, worker_id: str, payload_scale: float, chunk_bytes: int,
                 cluster_token: str | None = None) -> None:
        self.worker_id = worker_id
        self.cluster_token = cluster_token
        self.payload_scale = payload_scale
        self.chunk_bytes = chunk_bytes
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def send(self, address: str, request_id: str, num_tokens: int,
                   true_num_bytes: int, timeout_s: float,
                   ready: Callable[[], Awaitable[float]] | None = None) -> int:
        """Send one request's KV; returns payload bytes sent. Raises KvTransferError.

        The last chunk waits for `ready()` (the end of the modelled transfer), so the real
        bytes travel while the modelled time runs and decode never sees the KV early; what
        `ready()` returns (model seconds since that end) rides on the last chunk.
        """
        size = payload_num_bytes(true_num_bytes, self.payload_scale)
        payload = make_payload(request_id.encode(), size)
        chunks = [payload[i:i + self.chunk_bytes] for i in range(0, size, self.chunk_bytes)]
        chunks = chunks or [b""]

        async def stream() -> AsyncIterator[pb.KvChunk]:
            for seq, part in enumerate(chunks):
                age_s = 0.0
                if seq == len(chunks) - 1 and ready is not None:
                    age_s = await ready()
                yield pb.KvChunk(request_id=request_id, seq=seq, num_chunks=len(chunks),
                                 payload=part, crc32=checksum(part),
                                 true_num_bytes=true_num_bytes, num_tokens=num_tokens,
                                 source_worker_id=self.worker_id, ready_age_s=age_s)

        stub = pb_grpc.DecodeServiceStub(self._channel(address))
        try:
            response = await stub.TransferKv(stream(), timeout=timeout_s)
        except grpc.aio.AioRpcError as e:
            raise KvTransferError(f"decode {address} unreachable: {e.code().name}") from e
        if not response.ok:
            raise KvTransferError(f"decode {address} refused the KV: {response.reason}")
        return size

    def _channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            self._channels[address] = insecure_channel(address, self.cluster_token)
        return self._channels[address]
