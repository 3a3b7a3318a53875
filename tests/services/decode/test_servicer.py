"""The decode worker's gRPC face: KV verification, admission, per-step token batches."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import CollectorRegistry

from services.common.grpc_server import insecure_channel, start_grpc_server
from services.decode.metrics import DecodeMetrics
from services.decode.servicer import DecodeServicer
from services.decode.worker import DecodeWorker
from services.prefill.kv_sender import KvSender, KvTransferError
from supernode.clock import WallClock
from supernode.config import ClusterConfig
from supernode.deployment import instance_deployment
from supernode.engine.decode import DecodeEngine, DecodeParams
from supernode.lifecycle.decode import DecodeInstance
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

SUBSCRIBER = "test-scheduler"


@pytest.fixture
async def decode() -> AsyncIterator[tuple[str, DecodeWorker]]:
    deployment = instance_deployment(ClusterConfig(), "decode")
    engine = DecodeEngine(64, 100_000, DecodeParams(mtp_tokens=1, mtp_acceptance=0.7,
                                                    eos_probability=0.0))
    metrics = DecodeMetrics(CollectorRegistry(), "deepseek-r1", "decode-t")
    worker = DecodeWorker(DecodeInstance(engine, deployment), WallClock(1.0), metrics)
    worker.start()
    server = await start_grpc_server(
        [lambda s: pb_grpc.add_DecodeServiceServicer_to_server(DecodeServicer(worker), s)],
        "127.0.0.1", 0)
    yield f"127.0.0.1:{server.port}", worker
    await server.stop(0)
    await worker.stop()


def admit(request_id: str, max_tokens: int = 8) -> pb.AdmitRequest:
    return pb.AdmitRequest(request_id=request_id, num_prompt_tokens=100, max_tokens=max_tokens,
                           num_generated=1, seed=1, ignore_eos=True, subscriber_id=SUBSCRIBER)


async def test_tokens_flow_after_verified_kv(decode) -> None:
    """Admit, a verified KV transfer, then per-step batches until max_tokens (first from prefill)."""
    address, worker = decode
    async with insecure_channel(address) as channel:
        stub = pb_grpc.DecodeServiceStub(channel)
        stream = stub.StreamTokens(pb.StreamTokensRequest(subscriber_id=SUBSCRIBER))
        await stream.wait_for_connection()
        assert (await stub.Admit(admit("r1"), timeout=5)).accepted
        sender = KvSender("prefill-t", payload_scale=1e-3, chunk_bytes=4096)
        assert await sender.send(address, "r1", 100, 100 * 70_272, timeout_s=5) > 4096
        await sender.close()
        num_tokens, finish = 0, None
        async for batch in stream:
            assert batch.step_s > 0
            (update,) = batch.updates
            num_tokens += update.num_tokens
            if update.finish_reason:
                finish = update.finish_reason
                break
        stream.cancel()
    assert num_tokens == 7 and finish == pb.FINISH_REASON_LENGTH
    assert worker.engine.kv_reserved_tokens == 0


async def test_corrupt_misrouted_or_unknown_kv_is_refused(decode) -> None:
    """A chunk with a bad checksum, out of order, or for a request never admitted is refused;
    the request is not run on it."""
    address, worker = decode
    async with insecure_channel(address) as channel:
        stub = pb_grpc.DecodeServiceStub(channel)
        stream = stub.StreamTokens(pb.StreamTokensRequest(subscriber_id=SUBSCRIBER))
        await stream.wait_for_connection()
        assert (await stub.Admit(admit("r2"), timeout=5)).accepted

        async def chunks(*specs: tuple[str, int, bytes, int]) -> AsyncIterator[pb.KvChunk]:
            for request_id, seq, payload, crc in specs:
                yield pb.KvChunk(request_id=request_id, seq=seq, num_chunks=2, payload=payload,
                                 crc32=crc, true_num_bytes=1000, num_tokens=10)

        good = b"x" * 100
        bad = await stub.TransferKv(chunks(("r2", 0, good, zlib.crc32(good) ^ 1)), timeout=5)
        assert not bad.ok and "checksum" in bad.reason
        order = await stub.TransferKv(chunks(("r2", 1, good, zlib.crc32(good))), timeout=5)
        assert not order.ok and "order" in order.reason
        unknown = await stub.TransferKv(chunks(("nope", 0, good, zlib.crc32(good))), timeout=5)
        assert not unknown.ok and "unknown request" in unknown.reason
        short = await stub.TransferKv(chunks(("r2", 0, good, zlib.crc32(good))), timeout=5)
        assert not short.ok and "ended after 1" in short.reason
        stream.cancel()
    assert "r2" in worker.engine.pending and worker.engine.num_running == 0
    with pytest.raises(KvTransferError, match="unknown request"):
        sender = KvSender("prefill-t", 1e-3, 4096)
        try:
            await sender.send(address, "ghost", 10, 10_000, timeout_s=5)
        finally:
            await sender.close()


async def test_admission_needs_an_open_stream_and_room(decode) -> None:
    """No token stream for the subscriber, or no KV room: refused with a reason; Abort frees."""
    address, worker = decode
    async with insecure_channel(address) as channel:
        stub = pb_grpc.DecodeServiceStub(channel)
        refused = await stub.Admit(admit("r3"), timeout=5)
        assert not refused.accepted and "no token stream" in refused.reason
        stream = stub.StreamTokens(pb.StreamTokensRequest(subscriber_id=SUBSCRIBER))
        await stream.wait_for_connection()
        full = await stub.Admit(admit("r4", max_tokens=200_000), timeout=5)
        assert not full.accepted and "kv cache full" in full.reason
        assert (await stub.Admit(admit("r5"), timeout=5)).accepted
        assert (await stub.Abort(pb.AbortRequest(request_id="r5"), timeout=5)).found
        assert worker.engine.kv_reserved_tokens == 0
        stream.cancel()
    await asyncio.sleep(0.05)
    with pytest.raises(grpc.aio.AioRpcError):
        async with insecure_channel("127.0.0.1:1") as dead:
            await pb_grpc.DecodeServiceStub(dead).Admit(admit("x"), timeout=0.5)


async def test_retried_admit_is_idempotent_and_a_replaced_stream_frees_its_requests(
        decode) -> None:
    """An Admit retried after a lost reply is accepted without a second reservation; a new
    token stream for the same subscriber aborts the old stream's requests (KV freed)."""
    _, worker = decode
    worker.subscribe(SUBSCRIBER)
    assert worker.admit(admit("r6")) == (True, "")
    reserved = worker.engine.kv_reserved_tokens
    assert worker.admit(admit("r6")) == (True, "")
    assert worker.engine.kv_reserved_tokens == reserved
    worker.subscribe(SUBSCRIBER)
    assert worker.engine.kv_reserved_tokens == 0 and "r6" not in worker.engine
