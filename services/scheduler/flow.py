"""The live driver of the request lifecycle: gRPC and token streams around `Lifecycle`.

The lifecycle itself (its stages, and every decision: routing, admission, retries, shedding,
failover, the end) is supernode.lifecycle.scheduler's, shared with the simulator. This module
only carries the decisions out: Admit / Prefill / Abort RPCs, the decode token streams, and
waits on the scheduler's model clock (`WallClock` at the deployment's speedup), so every wait
and deadline is in model seconds, as in the simulator.

Per request: accept -> [several served models] before each pool, wait while an instance
switches to the request's model (the lifecycle's `model_wait`; services.scheduler.model_switches
carries the switch out) ->
decode admission (Admit RPCs in the policy's order; none has room: wait
until the lifecycle's retry time) -> Prefill RPC (carrying the stage's age, so the prefill
instance anchors the request's timeline at its arrival) -> its reply is the first token ->
TokenBatches from the decode instance's stream -> the end. A worker lost on the way (its
stream breaks, the RPC fails): abort what is left of the attempt, wait for the lifecycle's
back-off, and go round again from prompt + tokens so far; the client's stream just goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc

from services.common.grpc_server import insecure_channel
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.model_switches import ModelSwitches
from services.scheduler.token_streams import TokenEvent, TokenStreams, WorkerLost
from supernode.cache.hashing import block_keys
from supernode.clock import Clock
from supernode.engine.decode import DecodeRequest
from supernode.engine.registry import WorkerInfo, WorkerKind
from supernode.lifecycle.errors import RequestFailed
from supernode.lifecycle.request import Request
from supernode.lifecycle.scheduler import Lifecycle, PrefillResult
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

FINISH_NAMES = {pb.FINISH_REASON_STOP: "stop", pb.FINISH_REASON_LENGTH: "length",
                pb.FINISH_REASON_ABORT: "abort"}
ADMIT_TIMEOUT_S = 2.0
"""Wall seconds one Admit RPC (and the token stream it needs) may take."""


@dataclass(frozen=True)
class Emitted:
    """Tokens of choice `index` to send to the client; `finish_reason` set on its last."""

    token_ids: tuple[int, ...]
    finish_reason: str | None
    index: int = 0


class RequestFlow:
    """Carries requests through the lifecycle; owns the channels to prefill workers."""

    def __init__(self, lifecycle: Lifecycle, streams: TokenStreams, clock: Clock,
                 metrics: SchedulerMetrics,
                 on_finished: Callable[[Request], None] | None = None,
                 cluster_token: str | None = None) -> None:
        """`on_finished`: called with each request that finished (stop or length).
        `cluster_token`: attached to every call to a prefill instance."""
        self.lifecycle = lifecycle
        self.registry = lifecycle.registry
        self.streams = streams
        self.clock = clock
        self.metrics = metrics
        self.on_finished = on_finished
        self.cluster_token = cluster_token
        self.block_size = lifecycle.router.block_size
        self._channels: dict[str, tuple[str, grpc.aio.Channel]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._turns: dict[str, _Turn] = {}
        lifecycle.on_turn = self._on_turn  # this flow is the lifecycle's live driver
        self.switches = ModelSwitches(lifecycle, clock, metrics, self._channel)

    @property
    def active(self) -> dict[str, Request]:
        return self.lifecycle.active

    async def close(self) -> None:
        await self.switches.close()
        for _, channel in self._channels.values():
            await channel.close()

    def accept(self, request: Request, timeout_s: float | None = None) -> None:
        """Take the request into the lifecycle now (raises NoWorkers, RequestTooLarge,
        Overloaded: nothing has been sent yet)."""
        if self.block_size and request.prompt_token_ids is not None:
            request.block_keys = tuple(block_keys(request.prompt_token_ids, self.block_size,
                                                  request.cache_namespace))
        self.lifecycle.accept(request, self.clock.now(), timeout_s)

    def end_choice(self, request: Request, index: int, finish_reason: str) -> None:
        """A choice of a running request ended for the client (a stop string); the request's
        `run` ends when it was the last."""
        self.lifecycle.end_choice(request, index, finish_reason)

    def discard(self, request: Request) -> None:
        """Forget an accepted request that will never `run` (another choice of its response
        was refused, and the refusal is what the metrics count): nothing was sent for it."""
        request.finish_reason = "abort"
        self.lifecycle.release(request, self.clock.now())

    async def run(self, request: Request) -> AsyncIterator[Emitted]:
        """Serve an accepted request to the end, yielding tokens as they come; aborts on
        cancellation. One generator on purpose: every streamed chunk passes through here."""
        lc = self.lifecycle
        try:
            while True:
                decode = await self._admit(request) if lc.needs_decode(request) else None
                if decode is not None:
                    queue = self.streams.open(request.request_id, decode.worker_id)
                lost: WorkerLost | None = None
                try:
                    firsts, finish = await self._prefill(request, decode)
                    for first in firsts:
                        yield first
                    if finish:
                        request.finish_reason = finish
                        return
                    while True:
                        event = await queue.get()
                        if isinstance(event, WorkerLost):
                            lost = event
                            break
                        emitted = self._on_tokens(request, event)
                        if emitted is not None:
                            yield emitted
                        if request.finish_reason is not None:
                            return
                except _PrefillLost as e:
                    lost = WorkerLost(e.worker_id, str(e))
                    await self._abort_on_decode(request)
                finally:
                    self.streams.close_request(request.request_id)
                await self._failover(request, lost)
        except (asyncio.CancelledError, GeneratorExit):
            if request.finish_reason is None:
                request.finish_reason = "abort"  # the client went away
            raise
        finally:
            self._release(request)

    # ---- stages
    async def _admit(self, request: Request) -> WorkerInfo:
        """A decode instance that accepts the KV reservation, waiting in line while none has
        room (until the lifecycle gives the request its turn, or its wake-up time comes)."""
        lc = self.lifecycle
        while True:
            await self._await_model(request, WorkerKind.DECODE)
            for decode in lc.decode_order(request):
                try:
                    admitted = await self._try_admit(request, decode)
                except BaseException:  # cancelled, or a message the proto rejects
                    lc.on_admit_refused(request, decode)
                    raise
                if admitted:
                    lc.on_admitted(request, decode, self.clock.now())
                    self.metrics.routed_to("decode", decode.worker_id)
                    return decode
                lc.on_admit_refused(request, decode)
            wake_at = lc.next_admission_at(request, self.clock.now())
            lc.retry_admission(request, await self._wait_turn(request, wake_at))

    async def _await_model(self, request: Request, kind: WorkerKind) -> None:
        """Until an instance of `kind` holds the request's model (at once when one does)."""
        lc = self.lifecycle
        while (wake_at := lc.model_wait(request, kind, self.clock.now())) is not None:
            lc.retry_admission(request, await self._wait_turn(request, wake_at))

    def _on_turn(self, request: Request, now: float) -> None:
        turn = self._turns.get(request.request_id)
        if turn is not None:
            turn.at = now
            turn.event.set()

    async def _wait_turn(self, request: Request, wake_at: float) -> float:
        """Wait for the request's turn or `wake_at`; the model time to retry at."""
        turn = self._turns.setdefault(request.request_id, _Turn())
        timeout_s = self.clock.to_wall_s(max(0.0, wake_at - self.clock.now()))
        try:
            await asyncio.wait_for(turn.event.wait(), timeout=timeout_s)
        except TimeoutError:
            return wake_at
        finally:
            turn.event.clear()
        return turn.at

    async def _try_admit(self, request: Request, decode: WorkerInfo) -> bool:
        link = self.streams.connect(decode.worker_id, decode.address)
        try:
            await asyncio.wait_for(link.ready.wait(), timeout=ADMIT_TIMEOUT_S)
            response = await link.stub.Admit(
                _admit_message(self.lifecycle.decode_request(request), self.streams.subscriber_id,
                               request.model),
                timeout=ADMIT_TIMEOUT_S)
        except (TimeoutError, grpc.aio.AioRpcError, asyncio.CancelledError) as e:
            # The decode may have admitted it before the call failed: free that reservation.
            self._detach(link.stub.Abort(pb.AbortRequest(request_id=request.request_id),
                                         timeout=1.0))
            if isinstance(e, asyncio.CancelledError):
                raise
            log.warning("admit on %s failed: %r", decode.worker_id, e)
            return False
        if not response.accepted:
            self.metrics.admission_rejections.labels(worker=decode.worker_id).inc()
        return response.accepted

    async def _prefill(self, request: Request, decode: WorkerInfo | None
                       ) -> tuple[list[Emitted], str | None]:
        """Prefill on a chosen instance; the KV lands on `decode` (None: nowhere, the request
        ends with this token). Returns the token it samples for each running choice (the
        first, or on a resume the next) and the request's finish reason if it ends here."""
        lc = self.lifecycle
        await self._await_model(request, WorkerKind.PREFILL)
        prefill = lc.choose_prefill(request, self.clock.now())
        self.metrics.routed_to("prefill", prefill.worker_id)
        stub = pb_grpc.PrefillServiceStub(self._channel(prefill))
        now = self.clock.now()
        timeout_s = min(lc.limits.prefill_timeout_s, request.deadline_at - now)
        own_deadline = timeout_s < lc.limits.prefill_timeout_s
        try:
            response = await stub.Prefill(pb.PrefillRequest(
                request_id=request.request_id,
                prompt_token_ids=request.resume_token_ids(),
                cache_namespace=request.cache_namespace,
                decode_worker_id=decode.worker_id if decode else "",
                decode_address=decode.address if decode else "",
                stage_age_s=max(0.0, now - request.stage_at), model=request.model,
            ), timeout=self.clock.to_wall_s(max(timeout_s, 0.0)))
        except asyncio.CancelledError:
            lc.on_prefill_lost(request)
            self._detach(stub.Abort(pb.AbortRequest(request_id=request.request_id), timeout=1.0))
            raise
        except grpc.aio.AioRpcError as e:
            lc.on_prefill_lost(request)
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and own_deadline:
                self._detach(stub.Abort(pb.AbortRequest(request_id=request.request_id),
                                        timeout=1.0))
                lc.check_deadline(request, request.deadline_at)  # it was the request's: 408
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                # The worker's server is gone (its own failures come back as ABORTED). Do not
                # wait for its lease: a live worker re-registers at its next heartbeat.
                self.registry.remove(prefill.worker_id)
                self.switches.on_worker_change(prefill.worker_id)
            raise _PrefillLost(prefill.worker_id, f"prefill failed: {e.code().name}: "
                               f"{e.details()}") from e
        self.metrics.on_prefill(prefill.worker_id, response)
        result = PrefillResult(response.num_cached_tokens, response.queue_s,
                               response.cache_fetch_s, response.compute_s, response.transfer_s,
                               response.kv_num_bytes)
        # The reply may come up to the delivery lead early: the token is due at its modelled
        # time in this request's timeline.
        await self.clock.sleep_until(request.stage_at + result.fetch_s + result.queue_s
                                     + result.compute_s + result.transfer_s)
        first = request.first_token_at is None
        choices = request.running_choices()  # each samples one token from this prefill
        finish = lc.on_prefill_done(request, result, self.clock.now())
        if first:
            self.metrics.on_first_token(request)
        if request.choices is None:
            return [Emitted(self._ids(request, 1, finish), finish)], finish
        return [Emitted(self._ids(request, 1, c.finish_reason, c.index), c.finish_reason,
                        c.index) for c in choices], finish

    def _on_tokens(self, request: Request, event: TokenEvent) -> Emitted | None:
        """The client's tokens of one update (None: its choice had ended for the client)."""
        finish = FINISH_NAMES.get(event.finish_reason)
        if not self.lifecycle.on_tokens(request, event.num_tokens, event.elapsed_s, finish,
                                        event.index):
            return None
        return Emitted(self._ids(request, event.num_tokens, finish, event.index), finish,
                       event.index)

    def _ids(self, request: Request, num_tokens: int, finish: str | None,
             index: int = 0) -> tuple[int, ...]:
        """The tokens' ids, from the request's (or its choice's) sampler: the front end's
        text."""
        owner = request if request.choices is None else request.choices[index]
        ids = owner.sampler.next_ids(num_tokens, finish)
        owner.output_token_ids.extend(ids)
        return tuple(ids)

    async def _failover(self, request: Request, lost: WorkerLost | None) -> None:
        """Count a lost attempt; route the next one elsewhere after the lifecycle's back-off."""
        reason = lost.reason if lost else "unknown"
        self.metrics.failovers.inc()
        try:
            retry_at = self.lifecycle.on_worker_lost(
                request, lost.worker_id if lost else None, self.clock.now())
        except RequestFailed as e:
            raise RequestFailed(f"{e}: {reason}") from None
        log.warning("request %s fails over (%s) after %d tokens", request.request_id, reason,
                    request.num_output_tokens)
        await self.clock.sleep_until(retry_at)

    # ---- helpers
    def _channel(self, worker: WorkerInfo) -> grpc.aio.Channel:
        entry = self._channels.get(worker.worker_id)
        if entry is None or entry[0] != worker.address:
            entry = (worker.address, insecure_channel(worker.address, self.cluster_token))
            self._channels[worker.worker_id] = entry
        return entry[1]

    async def _abort_on_decode(self, request: Request) -> None:
        """Drop the request's reservation/batch slot on its decode instance, if any."""
        call = self._decode_abort(request)
        if call is not None:
            await _quietly(call)

    def _decode_abort(self, request: Request) -> Awaitable[object] | None:
        worker_id = request.decode_worker_id
        if worker_id is None or not self.lifecycle.forget_decode(request, worker_id,
                                                                 self.clock.now()):
            return None
        link = self.streams.links.get(worker_id)
        if link is None:
            return None
        return link.stub.Abort(pb.AbortRequest(request_id=request.request_id), timeout=1.0)

    def _detach(self, call: Awaitable[object]) -> None:
        """Run a clean-up RPC outside the caller's (possibly cancelled) task."""
        task = asyncio.get_running_loop().create_task(_quietly(call))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _release(self, request: Request) -> None:
        """Free the request everywhere: tell decode to drop it unless it finished there.

        Runs while the client's task may be cancelled (it hung up), so the abort RPC is
        detached rather than awaited here."""
        self.streams.close_request(request.request_id)
        self._turns.pop(request.request_id, None)
        if request.finished_on_decode and request.decode_worker_id is not None:
            self.lifecycle.forget_decode(request, request.decode_worker_id,
                                         self.clock.now())  # freed there
        elif (call := self._decode_abort(request)) is not None:
            self._detach(call)
        status = self.lifecycle.release(request, self.clock.now())
        self.metrics.on_end(request, status)
        if self.on_finished is not None and request.finish_reason in ("stop", "length"):
            self.on_finished(request)


class _Turn:
    """A waiting request's wake-up: set by the lifecycle's `on_turn`, with the model time."""

    __slots__ = ("at", "event")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.at = 0.0


class _PrefillLost(Exception):
    def __init__(self, worker_id: str, message: str) -> None:
        super().__init__(message)
        self.worker_id = worker_id


def _admit_message(admission: DecodeRequest, subscriber_id: str, model: str
                   ) -> pb.AdmitRequest:
    """The Admit RPC for what the lifecycle asks a decode instance to reserve (of `model`)."""
    return pb.AdmitRequest(
        request_id=admission.request_id, num_prompt_tokens=admission.num_prompt_tokens,
        max_tokens=admission.max_tokens, num_generated=admission.num_generated,
        seed=admission.seed, ignore_eos=admission.ignore_eos, subscriber_id=subscriber_id,
        choices=[pb.ChoiceProgress(index=i, num_generated=g) for i, g in admission.choices],
        model=model)


async def _quietly(call: Awaitable[object]) -> None:
    try:
        await call
    except (TimeoutError, grpc.aio.AioRpcError, asyncio.CancelledError):
        pass
