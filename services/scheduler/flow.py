"""The global scheduler's request path.

Lifecycle of one request (the whole system's, told once here):
  arrival -> tokenize (built-in deterministic tokenizer) -> refuse at once what can never fit
     (no decode instance's KV capacity holds prompt + max_tokens: HTTP 400)
  -> choose a decode instance and a prefill instance (routing policy over the live registry)
  -> decode admission: the decode instance reserves KV for prompt + max_tokens (refused: try
     another decode instance; none fits: wait and retry until the admission deadline)
  -> prefill: the prefill instance looks up the prompt's prefix in EMS (kv-affinity: in its
     own local cache), fetches the hits, computes the suffix in a token-budget batch, stores
     new blocks asynchronously and streams the KV to the chosen decode instance (RDMA) -> its
     reply carries the first token
  -> running on decode (continuous batching, MTP): one TokenBatch per step, fanned out here
  -> done (KV freed; with cache.store_decode_kv the decode-generated blocks go to EMS)
  | aborted (client gone: decode and prefill told, KV freed)
  | failed over (a worker lost: prefill again on another pair over prompt + tokens so far,
    routing around the lost worker, then continue decoding there; the client's stream just
    goes on; after max_failovers the stream ends with an error event).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc

from services.common.grpc_server import insecure_channel
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.token_streams import TokenEvent, TokenStreams, WorkerLost
from supernode.cache.hashing import block_keys
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry
from supernode.engine.request import RequestRecord, RequestStatus
from supernode.policy import RouteRequest, RoutingPolicy
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

FINISH_NAMES = {pb.FINISH_REASON_STOP: "stop", pb.FINISH_REASON_LENGTH: "length",
                pb.FINISH_REASON_ABORT: "abort"}


class NoWorkers(Exception):
    """No live worker of a needed kind (HTTP 503)."""

    def __init__(self, kind: WorkerKind) -> None:
        super().__init__(f"no {kind.value} workers registered")
        self.kind = kind


class RequestTooLarge(Exception):
    """The request can never fit a decode instance's KV cache (HTTP 400)."""


class RequestFailed(Exception):
    """The request could not be served after every retry (HTTP 503 / stream error)."""


@dataclass(frozen=True)
class Emitted:
    """Tokens to send to the client; `finish_reason` set on the last."""

    token_ids: tuple[int, ...]
    finish_reason: str | None


@dataclass(frozen=True)
class FlowLimits:
    """Wall-clock limits of the request path, as at speedup 1 (see `for_speedup`)."""

    admission_wait_s: float = 30.0
    """Wall seconds a request may wait for a decode instance with room."""
    max_failovers: int = 3
    rpc_timeout_s: float = 600.0
    """Wall deadline of one Prefill RPC (queueing, compute and KV transfer included)."""

    @classmethod
    def for_speedup(cls, speedup: float) -> FlowLimits:
        """Limits that stretch with the modelled time: at speedup 0.1 everything the hardware
        does takes ten times longer on the wall clock, so waits may too."""
        stretch = max(1.0, 1.0 / speedup)
        base = cls()
        return cls(admission_wait_s=base.admission_wait_s * stretch,
                   max_failovers=base.max_failovers,
                   rpc_timeout_s=base.rpc_timeout_s * stretch)


class RequestFlow:
    """Routes, admits, prefills and streams requests; owns the channels to prefill workers."""

    def __init__(self, registry: WorkerRegistry, streams: TokenStreams,
                 prefill_policy: RoutingPolicy, decode_policy: RoutingPolicy,
                 metrics: SchedulerMetrics, limits: FlowLimits = FlowLimits(),
                 cache_block_size: int | None = None,
                 on_finished: Callable[[RequestRecord], None] | None = None,
                 cluster_token: str | None = None) -> None:
        """`cache_block_size`: give policies the prompt's block keys (cache-aware routing).
        `on_finished`: called with each request that finished (stop or length).
        `cluster_token`: attached to every call to a prefill instance."""
        self.registry = registry
        self.streams = streams
        self.prefill_policy = prefill_policy
        self.decode_policy = decode_policy
        self.metrics = metrics
        self.limits = limits
        self.cache_block_size = cache_block_size
        self.on_finished = on_finished
        self.cluster_token = cluster_token
        self._block_keys: dict[str, tuple[bytes, ...]] = {}
        self._prefill_channels: dict[str, tuple[str, grpc.aio.Channel]] = {}
        self.active: dict[str, RequestRecord] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for _, channel in self._prefill_channels.values():
            await channel.close()

    def check_pools(self) -> None:
        """Raise NoWorkers when a pool the request needs is empty (before any work)."""
        for kind in (WorkerKind.PREFILL, WorkerKind.DECODE):
            if not self.registry.live(kind):
                raise NoWorkers(kind)

    def check_fits(self, record: RequestRecord) -> None:
        """Raise RequestTooLarge when no decode instance could ever hold the request's KV."""
        if record.num_remaining <= 1:
            return
        need = record.num_prompt_tokens + record.max_tokens
        largest = max((w.kv_capacity_tokens for w in self.registry.live(WorkerKind.DECODE)),
                      default=0)
        if largest and need > largest:
            raise RequestTooLarge(f"prompt + max_tokens = {need} tokens exceeds the KV capacity "
                                  f"of the largest decode instance ({largest} tokens)")

    async def run(self, record: RequestRecord) -> AsyncIterator[Emitted]:
        """Serve `record` to the end, yielding tokens as they come; aborts on cancellation.

        One generator on purpose: every streamed chunk passes through here."""
        self.active[record.request_id] = record
        if self.cache_block_size:
            self._block_keys[record.request_id] = tuple(block_keys(
                record.prompt_token_ids, self.cache_block_size, record.cache_namespace))
        self.metrics.on_state(record.status, +1)
        try:
            while True:
                # A request with one token left needs no decode instance: prefill samples it.
                decode = await self._admit(record) if record.num_remaining > 1 else None
                if decode is not None:
                    queue = self.streams.open(record.request_id, decode.worker_id)
                lost: WorkerLost | None = None
                try:
                    first = await self._prefill(record, decode)
                    yield first
                    if first.finish_reason:
                        record.finish_reason = first.finish_reason
                        return
                    self._set_status(record, RequestStatus.DECODING)
                    while True:
                        event = await queue.get()
                        if isinstance(event, WorkerLost):
                            lost = event
                            break
                        emitted = self._on_tokens(record, event)
                        if emitted.finish_reason:
                            record.finish_reason = emitted.finish_reason
                            record.finished_on_decode = True
                        yield emitted
                        if emitted.finish_reason:
                            return
                except _PrefillLost as e:
                    lost = WorkerLost(e.worker_id, str(e))
                    await self._abort_on_decode(record)
                finally:
                    self.streams.close_request(record.request_id)
                await self._failover(record, lost)
        except (asyncio.CancelledError, GeneratorExit):
            if record.finish_reason is None:
                record.finish_reason = "abort"  # the client went away
            raise
        finally:
            await self._release(record)

    # ---- stages
    async def _admit(self, record: RequestRecord) -> WorkerInfo:
        """Pick a decode instance that accepts the KV reservation, waiting while none has room."""
        deadline = time.monotonic() + self.limits.admission_wait_s
        backoff_s = 0.01
        while True:
            candidates = self._candidates(WorkerKind.DECODE, record)
            route = self._route(record)
            tried: set[str] = set()
            while len(tried) < len(candidates):
                decode = self.decode_policy.choose(
                    route, [w for w in candidates if w.worker_id not in tried])
                tried.add(decode.worker_id)
                if await self._try_admit(record, decode):
                    self.decode_policy.on_routed(route, decode)
                    return decode
            if time.monotonic() > deadline:
                raise RequestFailed("no decode instance had KV room within the admission wait")
            await asyncio.sleep(backoff_s)
            backoff_s = min(0.5, backoff_s * 2)

    async def _try_admit(self, record: RequestRecord, decode: WorkerInfo) -> bool:
        # Count the request against the worker before the RPC: concurrent arrivals must see
        # it, or they all pick the same "least-loaded" instance while the RPCs are in flight.
        self.registry.add_inflight(decode.worker_id, +1)
        link = self.streams.connect(decode.worker_id, decode.address)
        try:
            await asyncio.wait_for(link.ready.wait(), timeout=2.0)
            response = await link.stub.Admit(pb.AdmitRequest(
                request_id=record.request_id, num_prompt_tokens=record.num_prompt_tokens,
                max_tokens=record.max_tokens, num_generated=len(record.output_token_ids) + 1,
                seed=record.seed, ignore_eos=record.ignore_eos,
                eos_token_id=record.eos_token_id, subscriber_id=self.streams.subscriber_id),
                timeout=2.0)
        except (TimeoutError, grpc.aio.AioRpcError, asyncio.CancelledError) as e:
            # The decode may have admitted it before the call failed: free that reservation.
            self._detach(link.stub.Abort(pb.AbortRequest(request_id=record.request_id),
                                         timeout=1.0))
            if isinstance(e, asyncio.CancelledError):
                self.registry.add_inflight(decode.worker_id, -1)
                raise
            log.warning("admit on %s failed: %r", decode.worker_id, e)
            response = None
        if response is None or not response.accepted:
            self.registry.add_inflight(decode.worker_id, -1)
            if response is not None:
                self.metrics.admission_rejections.labels(worker=decode.worker_id).inc()
            return False
        record.decode_worker_id = decode.worker_id
        record.decode_reserved = True
        self.metrics.routed_to("decode", decode.worker_id)
        return True

    async def _prefill(self, record: RequestRecord, decode: WorkerInfo | None) -> Emitted:
        """Prefill on a chosen instance; the KV lands on `decode` (None: nowhere, the request
        ends with this token). Returns the token it samples: the first, or on a resume the next."""
        self._set_status(record, RequestStatus.PREFILLING)
        prefill = self._choose(WorkerKind.PREFILL, self.prefill_policy, record)
        record.prefill_worker_id = prefill.worker_id
        self.registry.add_inflight(prefill.worker_id, +1)
        stub = pb_grpc.PrefillServiceStub(self._prefill_channel(prefill))
        resuming = bool(record.output_token_ids)
        try:
            response = await stub.Prefill(pb.PrefillRequest(
                request_id=record.request_id,
                prompt_token_ids=record.prompt_token_ids + record.output_token_ids,
                cache_namespace=record.cache_namespace,
                decode_worker_id=decode.worker_id if decode else "",
                decode_address=decode.address if decode else "", seed=record.seed + len(record.output_token_ids),
            ), timeout=self.limits.rpc_timeout_s)
        except asyncio.CancelledError:
            self._detach(stub.Abort(pb.AbortRequest(request_id=record.request_id), timeout=1.0))
            raise
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                # The worker's server is gone (its own failures come back as ABORTED). Do not
                # wait for its lease: a live worker re-registers at its next heartbeat.
                self.registry.remove(prefill.worker_id)
            raise _PrefillLost(prefill.worker_id, f"prefill failed: {e.code().name}: "
                               f"{e.details()}") from e
        finally:
            self.registry.add_inflight(prefill.worker_id, -1)
        self.metrics.on_prefill(prefill.worker_id, response)
        if not resuming:
            record.num_cached_tokens = response.num_cached_tokens
            record.modelled_ttft_s = (response.queue_s + response.cache_fetch_s
                                      + response.compute_s + response.transfer_s)
        record.kv_num_bytes += response.kv_num_bytes
        token = response.first_token_id
        record.output_token_ids.append(token)
        if record.first_token_at is None:
            record.first_token_at = time.monotonic()
        finish = "length" if record.num_remaining <= 0 else None
        return Emitted((token,), finish)

    def _on_tokens(self, record: RequestRecord, event: TokenEvent) -> Emitted:
        record.output_token_ids.extend(event.token_ids)
        record.modelled_decode_s += event.elapsed_s
        return Emitted(event.token_ids, FINISH_NAMES.get(event.finish_reason))

    async def _failover(self, record: RequestRecord, lost: WorkerLost | None) -> None:
        """Count a lost attempt; route the next one elsewhere, after a short backoff."""
        reason = lost.reason if lost else "unknown"
        if lost is not None:
            self._forget_decode(record, lost.worker_id)
            record.lost_worker_ids.add(lost.worker_id)
        record.num_failovers += 1
        self.metrics.failovers.inc()
        if record.num_failovers > self.limits.max_failovers:
            raise RequestFailed(f"gave up after {record.num_failovers - 1} failovers: {reason}")
        log.warning("request %s fails over (%s) after %d tokens", record.request_id, reason,
                    len(record.output_token_ids))
        await asyncio.sleep(min(0.5, 0.02 * 2 ** record.num_failovers))

    # ---- helpers
    def _candidates(self, kind: WorkerKind, record: RequestRecord) -> list[WorkerInfo]:
        """Live workers of `kind`, without those this request already lost (unless that
        leaves none: a lost worker may have come back)."""
        workers = self.registry.live(kind)
        if not workers:
            raise NoWorkers(kind)
        fresh = [w for w in workers if w.worker_id not in record.lost_worker_ids]
        return fresh or workers

    def _choose(self, kind: WorkerKind, policy: RoutingPolicy, record: RequestRecord) -> WorkerInfo:
        workers = self._candidates(kind, record)
        route = self._route(record)
        worker = policy.choose(route, workers)
        policy.on_routed(route, worker)
        self.metrics.routed_to(kind.value, worker.worker_id)
        return worker

    def _route(self, record: RequestRecord) -> RouteRequest:
        return RouteRequest(record.request_id, record.num_prompt_tokens, record.max_tokens,
                            self._block_keys.get(record.request_id, ()),
                            self.cache_block_size or 0)

    def _prefill_channel(self, worker: WorkerInfo) -> grpc.aio.Channel:
        entry = self._prefill_channels.get(worker.worker_id)
        if entry is None or entry[0] != worker.address:
            entry = (worker.address, insecure_channel(worker.address, self.cluster_token))
            self._prefill_channels[worker.worker_id] = entry
        return entry[1]

    def _forget_decode(self, record: RequestRecord, worker_id: str) -> None:
        """Stop counting the request against `worker_id` (idempotent)."""
        if record.decode_worker_id == worker_id and record.decode_reserved:
            self.registry.add_inflight(worker_id, -1)
            record.decode_reserved = False

    def _set_status(self, record: RequestRecord, status: RequestStatus) -> None:
        self.metrics.on_state(record.status, -1)
        record.status = status
        self.metrics.on_state(status, +1)

    async def _abort_on_decode(self, record: RequestRecord) -> None:
        """Drop the request's reservation/batch slot on its decode instance, if any."""
        call = self._decode_abort(record)
        if call is not None:
            await _quietly(call)

    def _decode_abort(self, record: RequestRecord) -> Awaitable[object] | None:
        worker_id = record.decode_worker_id
        if worker_id is None or not record.decode_reserved:
            return None
        self._forget_decode(record, worker_id)
        link = self.streams.links.get(worker_id)
        if link is None:
            return None
        return link.stub.Abort(pb.AbortRequest(request_id=record.request_id), timeout=1.0)

    def _detach(self, call: Awaitable[object]) -> None:
        """Run a clean-up RPC outside the caller's (possibly cancelled) task."""
        task = asyncio.get_running_loop().create_task(_quietly(call))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release(self, record: RequestRecord) -> None:
        """Free the request everywhere: tell decode to drop it unless it finished there.

        Runs while the client's task may be cancelled (it hung up), so the abort RPC is
        detached rather than awaited here."""
        self.active.pop(record.request_id, None)
        self._block_keys.pop(record.request_id, None)
        self.streams.close_request(record.request_id)
        if record.finished_on_decode and record.decode_worker_id is not None:
            self._forget_decode(record, record.decode_worker_id)  # decode freed it already
        elif (call := self._decode_abort(record)) is not None:
            self._detach(call)
        self.metrics.on_state(record.status, -1)
        record.status = (RequestStatus.FINISHED if record.finish_reason in ("stop", "length")
                         else RequestStatus.ABORTED if record.finish_reason == "abort"
                         else RequestStatus.FAILED)
        if self.on_finished is not None and record.status is RequestStatus.FINISHED:
            self.on_finished(record)


class _PrefillLost(Exception):
    def __init__(self, worker_id: str, message: str) -> None:
        super().__init__(message)
        self.worker_id = worker_id


async def _quietly(call: Awaitable[object]) -> None:
    try:
        await call
    except (TimeoutError, grpc.aio.AioRpcError, asyncio.CancelledError):
        pass
