"""Writing KV blocks into EMS: the Put stream prefill uses, and decode-KV storage.

`DecodeKvWriter` implements `cache.store_decode_kv` (off by default, as for reasoning models,
paper s4.4.2): when a request finishes (stop or length), the full blocks of prompt + output
that the prompt's own blocks do not cover are put into the shared EMS in the background, so a
later turn that repeats the conversation hits them. Only tokens whose KV exists are covered
(the last sampled token has none yet). The scheduler does this on decode's behalf because it
alone holds the token ids; the bytes are counted on the configured plane as decode's writes.
Under kv-affinity nothing is stored: decode-node DRAM is a silo the prefill instances' local
caches cannot reach, which is one of the costs of KV-centric designs the paper names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import grpc

from services.common.grpc_server import insecure_channel
from supernode.cache.hashing import block_keys
from supernode.cache.payload import checksum, make_payload, payload_num_bytes
from supernode.config import CacheConfig
from supernode.engine.registry import WorkerKind, WorkerRegistry
from supernode.lifecycle.cache import decode_blocks_to_store
from supernode.lifecycle.request import Request
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

PUT_TIMEOUT_S = 5.0


async def put_blocks(stub: pb_grpc.EmsServiceStub, namespace: str, keys: Sequence[bytes],
                     config: CacheConfig, kv_bytes_per_block: int, payload_scale: float
                     ) -> pb.PutResponse:
    """Stream synthetic payloads for `keys` into EMS (raises grpc.aio.AioRpcError)."""
    size = payload_num_bytes(kv_bytes_per_block, payload_scale)

    async def blocks() -> AsyncIterator[pb.KvBlock]:
        for key in keys:
            payload = make_payload(key, size)
            yield pb.KvBlock(namespace=namespace, key=key, payload=payload,
                             crc32=checksum(payload), true_num_bytes=kv_bytes_per_block,
                             num_tokens=config.block_size)

    return await stub.Put(blocks(), timeout=PUT_TIMEOUT_S,
                          metadata=(("x-supernode-plane", config.plane),))


class DecodeKvWriter:
    """Puts finished requests' decode-generated blocks into a live EMS replica; never raises."""

    def __init__(self, registry: WorkerRegistry, config: CacheConfig, kv_bytes_per_token: int,
                 payload_scale: float, cluster_token: str | None = None) -> None:
        self.registry = registry
        self.cluster_token = cluster_token
        self.config = config
        self.kv_bytes_per_block = config.block_size * kv_bytes_per_token
        self.payload_scale = payload_scale
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def on_finished(self, record: Request) -> None:
        if record.finish_reason not in ("stop", "length"):
            return
        span = decode_blocks_to_store(record.num_prompt_tokens, record.num_kept_tokens,
                                      self.config.block_size)
        if not span:
            return
        tokens = record.prompt_token_ids + record.kept_output_ids()
        keys = block_keys(tokens[:span.stop * self.config.block_size], self.config.block_size,
                          record.cache_namespace)[span.start:]
        replicas = self.registry.live(WorkerKind.EMS)
        if not keys or not replicas:
            return
        task = asyncio.create_task(self._put(replicas[0].address, record.cache_namespace, keys))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)
        for channel in self._channels.values():
            await channel.close()

    async def _put(self, address: str, namespace: str, keys: Sequence[bytes]) -> None:
        if address not in self._channels:
            self._channels[address] = insecure_channel(address, self.cluster_token)
        stub = pb_grpc.EmsServiceStub(self._channels[address])
        try:
            await put_blocks(stub, namespace, keys, self.config, self.kv_bytes_per_block,
                             self.payload_scale)
        except grpc.aio.AioRpcError as e:
            log.warning("storing decode KV in EMS failed (%s); blocks dropped", e.code().name)
            return
