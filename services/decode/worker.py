"""One decode instance: the lifecycle's `DecodeInstance` on the modelled clock, tokens streamed
per step.

Every step is priced by the instance model (supernode.lifecycle.decode); the worker sleeps
until the step's end on its clock, then sends one `TokenBatch` per subscriber carrying each of
its requests' token count of the step. Steps chain from the previous step's end and a request's
KV arrival is anchored to its modelled transfer end, so the emulator's own delays are absorbed
while they are shorter than a step.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import defaultdict

from services.common.crash import stop_process_if_crashed
from services.decode.metrics import DecodeMetrics
from supernode.clock import Clock
from supernode.engine.decode import DecodeRequest, FinishReason, StepOutcome, TokenOutput
from supernode.lifecycle.decode import DecodeInstance, Step
from supernode.perf import Deployment
from supernode.v1 import supernode_pb2 as pb

log = logging.getLogger(__name__)

_FINISH_TO_PB = {
    None: pb.FINISH_REASON_UNSPECIFIED,
    FinishReason.STOP: pb.FINISH_REASON_STOP,
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
    FinishReason.ABORT: pb.FINISH_REASON_ABORT,
}


class _StepSeries:
    """The per-step series with their labels resolved once (label lookup dominated the step)."""

    def __init__(self, m: DecodeMetrics) -> None:
        labels = m.labels
        self.generation_tokens = m.generation_tokens.labels(**labels)
        self.iteration_tokens = m.iteration_tokens.labels(**labels)
        self.itl = m.itl.labels(**labels)
        self.tpot = m.tpot.labels(**labels)
        self.mtp_proposed = m.mtp_proposed.labels(**labels)
        self.mtp_accepted = m.mtp_accepted.labels(**labels)
        self.kv_reserved = m.kv_reserved.labels(**labels)


class DecodeWorker:
    """Owns the instance model, the step loop and the token subscribers of one instance."""

    def __init__(self, instance: DecodeInstance, clock: Clock, metrics: DecodeMetrics,
                 delivery_lead_s: float = 0.0) -> None:
        """`delivery_lead_s`: wall seconds a step's tokens are sent ahead of the step's end
        (the scheduler holds them until then)."""
        self.instance = instance
        self.engine = instance.engine
        self.own_deployment = instance.deployment
        """The instance's own hardware (faults price on slowed copies of it)."""
        self.clock = clock
        self.metrics = metrics
        self._subscribers: dict[str, asyncio.Queue[pb.TokenBatch]] = {}
        self._owner: dict[str, str] = {}
        self._started_at: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._series = _StepSeries(metrics)
        self._lead_s = clock.to_model_s(delivery_lead_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._step_loop(), name="decode-steps")
        self._task.add_done_callback(stop_process_if_crashed)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def deployment(self) -> Deployment:
        """What the instance prices on now (see `use_hardware`)."""
        return self.instance.deployment

    def use_hardware(self, deployment: Deployment) -> None:
        """Price the next steps on `deployment`: the instance's own, or a copy with slowed
        links while an injected fault lasts (services.common.faults)."""
        self.instance.use_hardware(deployment)

    def use_instance(self, instance: DecodeInstance) -> None:
        """Become `instance` (another model's, after a switch); only while idle."""
        if not self.is_idle:
            raise RuntimeError("a decode instance changes models only while idle")
        self.instance, self.engine = instance, instance.engine
        self.own_deployment = instance.deployment
        self._publish_gauges()

    @property
    def is_idle(self) -> bool:
        """Nothing admitted, running or in a step, and every step's tokens handed to the token
        streams: a drain may end (the last step's tokens leave early, its KV frees at its end)."""
        e = self.engine
        return (self.instance.step is None and e.num_running == 0 and e.num_waiting == 0
                and all(q.empty() for q in self._subscribers.values()))

    # ---- subscribers
    def subscribe(self, subscriber_id: str) -> asyncio.Queue[pb.TokenBatch]:
        """A new token stream for `subscriber_id`. A stream it replaces takes its requests
        with it: their tokens had nowhere to go, and the subscriber fails them over."""
        if subscriber_id in self._subscribers:
            self._abort_owned_by(subscriber_id)
        queue: asyncio.Queue[pb.TokenBatch] = asyncio.Queue()
        self._subscribers[subscriber_id] = queue
        return queue

    def unsubscribe(self, subscriber_id: str, queue: asyncio.Queue[pb.TokenBatch]) -> None:
        """Drop a subscriber whose stream ended; its requests are aborted (nobody reads them)."""
        if self._subscribers.get(subscriber_id) is not queue:
            return
        del self._subscribers[subscriber_id]
        self._abort_owned_by(subscriber_id)

    def _abort_owned_by(self, subscriber_id: str) -> None:
        for request_id in [r for r, s in self._owner.items() if s == subscriber_id]:
            self.abort(request_id)

    # ---- requests
    def admit(self, request: pb.AdmitRequest) -> tuple[bool, str]:
        if request.subscriber_id not in self._subscribers:
            return False, f"no token stream open for subscriber {request.subscriber_id!r}"
        if (request.request_id in self.engine.pending
                and self._owner.get(request.request_id) == request.subscriber_id):
            return True, ""  # a retried Admit whose first reply was lost: already reserved
        reason = self.instance.admit(DecodeRequest(
            request_id=request.request_id, num_prompt_tokens=request.num_prompt_tokens,
            max_tokens=request.max_tokens, num_generated=request.num_generated,
            seed=request.seed, ignore_eos=request.ignore_eos,
            choices=tuple((c.index, c.num_generated) for c in request.choices)))
        if reason:
            self.metrics.admission_rejections.labels(**self.metrics.labels).inc()
            return False, reason
        self._owner[request.request_id] = request.subscriber_id
        self._publish_gauges()
        return True, ""

    def on_kv_arrived(self, request_id: str, ready_age_s: float = 0.0) -> bool:
        """The request's KV arrived; in its timeline it was ready `ready_age_s` ago."""
        ok = self.instance.on_kv_arrived(request_id, self.clock.now() - ready_age_s)
        if ok:
            self._wake.set()
        return ok

    def abort(self, request_id: str) -> bool:
        found = self.instance.abort(request_id)
        self._owner.pop(request_id, None)
        self._started_at.pop(request_id, None)
        if found:
            self.metrics.success.labels(**self.metrics.labels, finished_reason="abort").inc()
        self._publish_gauges()
        return found

    def verify_chunk(self, chunk: pb.KvChunk) -> str:
        """Empty string when the chunk is intact and expected, else why not."""
        if zlib.crc32(chunk.payload) != chunk.crc32:
            return "checksum mismatch"
        if chunk.request_id not in self.engine.pending:
            return "unknown request (not admitted, or aborted)"
        return ""

    # ---- the step loop
    async def _step_loop(self) -> None:
        while True:
            step = self.instance.start_step(self.clock.now())
            if step is None:
                self._wake.clear()
                self._publish_gauges()
                await self._wake.wait()
                continue
            for request_id, _ in step.joined:
                self._started_at.setdefault(request_id, step.started_at)
            # A step's tokens are known when it starts: they leave the delivery lead early and
            # the scheduler releases them at the step's end. The batch itself (KV freed,
            # requests ended) advances at the step's end, in model time.
            await self.clock.sleep_until(step.done_at - self._lead_s)
            outputs = self.instance.step_outputs()
            self._send(step, outputs)
            await self.clock.sleep_until(step.done_at)
            step, outcome, _ = self.instance.complete_step()
            for finished in outcome.finished:
                if finished.last:  # a request with several choices ends with its last
                    self._on_finished(finished.request_id, finished.finish_reason,
                                      step.done_at)
            self._record_step(step, outcome, outputs)

    def _send(self, step: Step, outputs: list[TokenOutput]) -> None:
        """One TokenBatch per subscriber with its requests' tokens of `step`."""
        first_elapsed = dict(step.joined)
        by_subscriber: dict[str, list[pb.TokenUpdate]] = defaultdict(list)
        for out in outputs:
            owner = self._owner.get(out.request_id)
            if owner is not None:
                by_subscriber[owner].append(pb.TokenUpdate(
                    request_id=out.request_id, num_tokens=out.num_tokens,
                    finish_reason=_FINISH_TO_PB[out.finish_reason],
                    elapsed_s=first_elapsed.get(out.request_id, 0.0), index=out.index))
        due_in_s = max(0.0, step.done_at - self.clock.now())
        for subscriber_id, updates in by_subscriber.items():
            queue = self._subscribers.get(subscriber_id)
            if queue is not None:
                queue.put_nowait(pb.TokenBatch(step_s=step.timing.total_s, updates=updates,
                                               due_in_s=due_in_s))

    def _on_finished(self, request_id: str, reason: FinishReason, at: float) -> None:
        self._owner.pop(request_id, None)
        started = self._started_at.pop(request_id, None)
        m = self.metrics
        if started is not None:
            m.decode_time.labels(**m.labels).observe(at - started)
        m.success.labels(**m.labels, finished_reason=reason.value).inc()

    def _record_step(self, step: Step, outcome: StepOutcome, outputs) -> None:
        step_s = step.timing.total_s
        self.metrics.hw.on_step(step.timing)
        s = self._series
        s.generation_tokens.inc(outcome.num_tokens)
        s.iteration_tokens.observe(outcome.num_tokens)
        for out in outputs:  # hot: one pass, children resolved once in __init__
            s.itl.observe(step_s)
            s.tpot.observe(step_s / out.num_tokens)
        mtp = self.deployment.mtp_tokens
        if mtp and outcome.num_requests:
            s.mtp_proposed.inc(mtp * outcome.num_requests)
            s.mtp_accepted.inc(outcome.num_tokens - outcome.num_requests)
        self._publish_gauges()

    def _publish_gauges(self) -> None:
        e = self.engine
        self.metrics.set_queues(e.num_running, e.num_waiting)
        self.metrics.set_usage(e.kv_used_tokens() / e.kv_capacity_tokens)
        self._series.kv_reserved.set(e.kv_reserved_tokens / e.kv_capacity_tokens)
