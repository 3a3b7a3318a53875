"""gRPC face of a decode worker: Admit, TransferKv, StreamTokens, Abort."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from services.decode.worker import DecodeWorker
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class DecodeServicer(pb_grpc.DecodeServiceServicer):
    def __init__(self, worker: DecodeWorker, model: str = "") -> None:
        self.worker = worker
        self.model = model
        """The served model the instance holds: requests for another are refused."""
        self.draining = False
        """Set when the worker drains: admissions are refused (the scheduler, which stopped
        routing here, tries another instance for one that raced the drain)."""
        self.switching = False
        """Set while the instance switches models: admissions are refused likewise."""

    async def Admit(self, request: pb.AdmitRequest, context: grpc.aio.ServicerContext
                    ) -> pb.AdmitResponse:
        if self.draining:
            return pb.AdmitResponse(accepted=False, reason="draining: shutting down")
        if self.switching:
            return pb.AdmitResponse(accepted=False, reason="switching models")
        if request.model and self.model and request.model != self.model:
            return pb.AdmitResponse(accepted=False,
                                    reason=f"holds model {self.model}, not {request.model}")
        accepted, reason = self.worker.admit(request)
        return pb.AdmitResponse(accepted=accepted, reason=reason)

    async def TransferKv(self, request_iterator: AsyncIterator[pb.KvChunk],
                         context: grpc.aio.ServicerContext) -> pb.TransferKvResponse:
        """Receive one request's KV; it joins the ready queue only if every chunk verifies."""
        request_id, num_bytes, expected, seen, ready_age_s = "", 0, None, 0, 0.0
        m = self.worker.metrics
        async for chunk in request_iterator:
            if expected is None:
                request_id, expected = chunk.request_id, chunk.num_chunks
            problem = self.worker.verify_chunk(chunk)
            if not problem and (chunk.request_id != request_id or chunk.seq != seen):
                problem = "misrouted or out-of-order chunk"
            if problem:
                log.warning("KV for %s refused: %s", request_id, problem)
                m.kv_rejected.labels(**m.labels, reason=problem.split(" ")[0]).inc()
                return pb.TransferKvResponse(ok=False, reason=problem)
            seen += 1
            num_bytes += len(chunk.payload)
            true_bytes, ready_age_s = chunk.true_num_bytes, chunk.ready_age_s
        if expected is None or seen != expected:
            return pb.TransferKvResponse(ok=False, reason=f"stream ended after {seen} chunks")
        m.kv_bytes_received.labels(**m.labels, plane="rdma", direction="in").inc(true_bytes)
        if not self.worker.on_kv_arrived(request_id, ready_age_s):
            return pb.TransferKvResponse(ok=False, reason="request aborted during transfer")
        return pb.TransferKvResponse(ok=True, num_payload_bytes=num_bytes)

    async def StreamTokens(self, request: pb.StreamTokensRequest,
                           context: grpc.aio.ServicerContext) -> AsyncIterator[pb.TokenBatch]:
        queue = self.worker.subscribe(request.subscriber_id)
        await context.send_initial_metadata(())  # tells the subscriber the stream is live
        log.info("token stream opened for %s", request.subscriber_id)
        try:
            while True:
                yield await queue.get()
        finally:
            log.info("token stream closed for %s", request.subscriber_id)
            self.worker.unsubscribe(request.subscriber_id, queue)

    async def Abort(self, request: pb.AbortRequest, context: grpc.aio.ServicerContext
                    ) -> pb.AbortResponse:
        return pb.AbortResponse(found=self.worker.abort(request.request_id))
