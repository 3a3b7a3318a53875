"""One decode instance: continuous batching on the modelled clock, tokens streamed per step.

Every step the engine's running batch is priced by the hardware model
(`supernode.perf.decode_step_time`), the worker waits until that step's deadline on the clock,
then sends one `TokenBatch` per subscriber carrying the step's tokens for all its requests.
Deadlines chain from the previous deadline, so waiting jitter does not accumulate.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import defaultdict

from services.common.crash import stop_process_if_crashed
from services.decode.metrics import DecodeMetrics
from supernode.clock import Clock
from supernode.engine.decode import DecodeEngine, DecodeRequest, FinishReason, TokenOutput
from supernode.perf import DecodeBatch, Deployment, decode_step_time
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
    """Owns the engine, the step loop and the token subscribers of one instance."""

    def __init__(self, engine: DecodeEngine, deployment: Deployment, clock: Clock,
                 metrics: DecodeMetrics) -> None:
        self.engine = engine
        self.deployment = deployment
        self.clock = clock
        self.metrics = metrics
        self._subscribers: dict[str, asyncio.Queue[pb.TokenBatch]] = {}
        self._owner: dict[str, str] = {}
        self._started_at: dict[str, float] = {}
        self._ready_at: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._series = _StepSeries(metrics)

    def start(self) -> None:
        self._task = asyncio.create_task(self._step_loop(), name="decode-steps")
        self._task.add_done_callback(stop_process_if_crashed)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def use_hardware(self, deployment: Deployment) -> None:
        """Price the next steps on `deployment`: the instance's own, or a copy with slowed
        links while an injected fault lasts (services.common.faults)."""
        self.deployment = deployment

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
        if request.max_tokens <= request.num_generated:
            return False, "nothing left to generate"
        if (request.request_id in self.engine.pending
                and self._owner.get(request.request_id) == request.subscriber_id):
            return True, ""  # a retried Admit whose first reply was lost: already reserved
        try:
            self.engine.admit(DecodeRequest(
                request_id=request.request_id, num_prompt_tokens=request.num_prompt_tokens,
                max_tokens=request.max_tokens, num_generated=request.num_generated,
                seed=request.seed, ignore_eos=request.ignore_eos,
                eos_token_id=request.eos_token_id))
        except ValueError as e:
            self.metrics.admission_rejections.labels(**self.metrics.labels).inc()
            return False, str(e)
        self._owner[request.request_id] = request.subscriber_id
        if request.kv_in_place:
            self.on_kv_arrived(request.request_id)
        self._publish_gauges()
        return True, ""

    def on_kv_arrived(self, request_id: str) -> bool:
        ok = self.engine.on_kv_arrived(request_id)
        if ok:
            self._ready_at[request_id] = self.clock.now()
            self._wake.set()
        return ok

    def abort(self, request_id: str) -> bool:
        found = self.engine.abort(request_id)
        self._owner.pop(request_id, None)
        self._started_at.pop(request_id, None)
        self._ready_at.pop(request_id, None)
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
        deadline = self.clock.now()
        while True:
            batch = self.engine.schedule()
            if not batch:
                self._wake.clear()
                self._publish_gauges()
                await self._wake.wait()
                deadline = self.clock.now()
                continue
            now = self.clock.now()
            for r in batch:
                self._started_at.setdefault(r.request_id, now)
            timing = decode_step_time(DecodeBatch(len(batch), self.engine.mean_kv_len()),
                                      self.deployment)
            # Chain deadlines; allow catching up at most one step when the host lags.
            deadline = max(deadline, now - timing.total_s) + timing.total_s
            await self.clock.sleep_until(deadline)
            self._finish_step(self.engine.complete_step(), timing)

    def _finish_step(self, outputs: list[TokenOutput], timing: object) -> None:
        step_s = timing.total_s  # type: ignore[attr-defined]
        by_subscriber: dict[str, list[pb.TokenUpdate]] = defaultdict(list)
        num_tokens = 0
        now = self.clock.now()
        for out in outputs:
            num_tokens += len(out.token_ids)
            owner = self._owner.get(out.request_id)
            ready_at = self._ready_at.pop(out.request_id, None)
            if owner is not None:
                by_subscriber[owner].append(pb.TokenUpdate(
                    request_id=out.request_id, token_ids=out.token_ids,
                    finish_reason=_FINISH_TO_PB[out.finish_reason],
                    elapsed_s=0.0 if ready_at is None else now - ready_at))
            if out.finish_reason is not None:
                self._on_finished(out)
        for subscriber_id, updates in by_subscriber.items():
            queue = self._subscribers.get(subscriber_id)
            if queue is not None:
                queue.put_nowait(pb.TokenBatch(step_s=step_s, updates=updates))
        self._record_step(outputs, num_tokens, timing)

    def _on_finished(self, out: TokenOutput) -> None:
        self._owner.pop(out.request_id, None)
        started = self._started_at.pop(out.request_id, None)
        m = self.metrics
        if started is not None:
            m.decode_time.labels(**m.labels).observe(self.clock.now() - started)
        m.success.labels(**m.labels, finished_reason=out.finish_reason.value).inc()

    def _record_step(self, outputs: list[TokenOutput], num_tokens: int, timing: object) -> None:
        step_s = timing.total_s  # type: ignore[attr-defined]
        self.metrics.hw.on_step(timing)  # type: ignore[arg-type]
        s = self._series
        s.generation_tokens.inc(num_tokens)
        s.iteration_tokens.observe(num_tokens)
        for out in outputs:  # hot: one pass, children resolved once in __init__
            s.itl.observe(step_s)
            s.tpot.observe(step_s / len(out.token_ids))
        mtp = self.deployment.mtp_tokens
        if mtp and outputs:
            s.mtp_proposed.inc(mtp * len(outputs))
            s.mtp_accepted.inc(num_tokens - len(outputs))
        self._publish_gauges()

    def _publish_gauges(self) -> None:
        e = self.engine
        self.metrics.set_queues(e.num_running, e.num_waiting)
        self.metrics.set_usage(e.kv_used_tokens() / e.kv_capacity_tokens)
        self._series.kv_reserved.set(e.kv_reserved_tokens / e.kv_capacity_tokens)
