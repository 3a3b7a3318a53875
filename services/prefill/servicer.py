"""gRPC face of a prefill worker: Prefill, Abort."""

from __future__ import annotations

import logging

import grpc

from services.prefill.kv_sender import KvTransferError
from services.prefill.worker import PrefillWorker
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class PrefillServicer(pb_grpc.PrefillServiceServicer):
    def __init__(self, worker: PrefillWorker, model: str = "") -> None:
        self.worker = worker
        self.model = model
        """The served model the instance holds: requests for another are refused."""
        self.switching = False
        """Set while the instance switches models: new requests are refused."""
        self.num_inflight = 0
        """Prefill calls in progress (a drain waits for them: they end with the KV handoff)."""

    async def Prefill(self, request: pb.PrefillRequest, context: grpc.aio.ServicerContext
                      ) -> pb.PrefillResponse:
        if not request.prompt_token_ids:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty prompt")
        if self.switching or (request.model and self.model and request.model != self.model):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"this instance holds model {self.model!r}"
                                f"{' and is switching' if self.switching else ''}; the "
                                f"request is for {request.model!r}")
        self.num_inflight += 1
        try:
            return await self.worker.prefill(request)
        except KvTransferError as e:
            m = self.worker.metrics
            m.kv_transfer_failures.labels(**m.labels).inc()
            log.warning("KV transfer for %s failed: %s", request.request_id, e)
            await context.abort(grpc.StatusCode.ABORTED, str(e))
            raise  # unreachable: abort raises
        finally:
            self.num_inflight -= 1

    async def Abort(self, request: pb.AbortRequest, context: grpc.aio.ServicerContext
                    ) -> pb.AbortResponse:
        return pb.AbortResponse(found=self.worker.abort(request.request_id))
