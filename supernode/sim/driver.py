"""The request lifecycle in virtual time: supernode.lifecycle's decisions and instances, carried
out as events.

The same sequence as the live scheduler (services/scheduler/flow.py), every decision asked of
`Lifecycle`: RequestSent -> accept (400 / 429 / 503 end it at once) -> decode admission
(`AdmissionRetry` events while no instance has room) -> choose a prefill instance, look the
prefix up in its cache -> `PrefillQueued` once the fetch is done -> batches
(`PrefillBatchDone`) -> `KvArrived` per request (the client's first token) -> decode steps
(`DecodeStepDone`) -> the end. With several served models, a request waits before each pool
that lacks its model (`AdmissionRetry` again) while an instance switches (supernode.sim.models:
start-up loads, switches, `LoadCheck` / `LoadDone` events). Workers are the live ones' engines
and models (`PrefillInstance`, `DecodeInstance`); routing policies see their load as if
heartbeats were instant.

Cost: a decode step costs O(1 + requests joining or leaving), not O(batch); per-request token
data is produced only when `detailed` (then each step is O(batch)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from supernode.config import ClusterConfig
from supernode.deployment import ServedModel, instance_deployment
from supernode.engine.prefill import PrefillJob
from supernode.engine.registry import WorkerKind, WorkerLoad, WorkerRegistry
from supernode.lifecycle.cache import stores_decode_kv
from supernode.lifecycle.decode import Step
from supernode.lifecycle.errors import LifecycleError
from supernode.lifecycle.models import SwitchDone
from supernode.lifecycle.prefill import Batch, PrefillInstance
from supernode.lifecycle.request import Request
from supernode.lifecycle.scheduler import Lifecycle, PrefillResult
from supernode.sim.cache import SimPrefixCache, build_caches
from supernode.sim.kernel import Scheduled
from supernode.sim.models import SimModels


@dataclass(frozen=True, slots=True)
class RequestSent:
    request: Request


@dataclass(frozen=True, slots=True)
class AdmissionRetry:
    request: Request
    epoch: int
    """The wait it ends (`Request.admission_epoch`); a later wait makes it stale."""


@dataclass(frozen=True, slots=True)
class PrefillQueued:
    request: Request
    worker_id: str
    job: PrefillJob


@dataclass(frozen=True, slots=True)
class PrefillBatchDone:
    worker_id: str


@dataclass(frozen=True, slots=True)
class KvArrived:
    request: Request
    result: PrefillResult


@dataclass(frozen=True, slots=True)
class DecodeStepDone:
    worker_id: str


@dataclass(frozen=True, slots=True)
class DeadlineReached:
    request: Request


class Observer:
    """What the simulation tells the outside (the client's view); the runner implements it."""

    def on_first_token(self, request: Request, now: float) -> None: ...

    def on_step(self, step: Step, num_tokens: int) -> None:
        """A decode step ended: `num_tokens` reached clients; `step.joined` says, for each
        request in its first decode step, the gap since its first token."""

    def on_step_tokens(self, request: Request, num_tokens: int, now: float) -> None:
        """Only in detailed runs: one request's tokens of one step."""

    def on_done(self, request: Request, now: float) -> Iterator[Scheduled]: ...

    def on_model_loaded(self, worker_id: str, model: ServedModel, source: str,
                        started_at: float, now: float) -> None:
        """An instance finished loading `model` from `source` (its start-up or a switch)."""

    def on_switch_done(self, done: SwitchDone, source: str) -> None:
        """An instance is ready with the model it switched to (it loaded from `source`)."""


@dataclass
class _Prefill:
    instance: PrefillInstance
    cache: SimPrefixCache | None


class SimCluster:
    """Instances and the lifecycle of one config; `handlers()` feeds the event loop."""

    def __init__(self, config: ClusterConfig, observer: Observer, detailed: bool = False) -> None:
        self.config = config
        self.observer = observer
        self.detailed = detailed
        self.registry = WorkerRegistry(lease_s=float("inf"))
        self._turns: list[Scheduled] = []
        self.lifecycle = Lifecycle(config, self.registry, self._on_turn,
                                   lambda switch, now: self.models.on_switch(switch, now))
        self.models = SimModels(self)
        prefill = instance_deployment(config, "prefill")
        kv_per_token = prefill.model.kv_bytes_per_token(prefill.kv_dtype)
        m = self.models
        self.prefills = {f"prefill-{i}": _Prefill(m.new_prefill(m.first_model(i)), cache)
                         for i, cache in enumerate(build_caches(config, kv_per_token))}
        self.decodes = {f"decode-{i}": m.new_decode(m.first_model(i))
                        for i in range(config.num_decode)}
        self.store_decode_kv = stores_decode_kv(config)
        loading = config.model_load.enabled
        for i, worker_id in enumerate(self.prefills):
            m.register(worker_id, m.first_model(i), loading)
        for i, worker_id in enumerate(self.decodes):
            m.register(worker_id, m.first_model(i), loading)

    def handlers(self) -> dict[type, Callable[[float, object], Iterator[Scheduled]]]:
        return {RequestSent: self.on_sent, AdmissionRetry: self.on_admission_retry,
                PrefillQueued: self.on_prefill_queued, PrefillBatchDone: self.on_batch_done,
                KvArrived: self.on_kv_arrived, DecodeStepDone: self.on_step_done,
                DeadlineReached: self.on_deadline, **self.models.handlers()}

    def start(self, now: float = 0.0) -> Iterator[Scheduled]:
        """The run's first events: instances loading their models (when loads are modelled)."""
        yield from self.models.start(now)

    def drain_turns(self) -> Iterator[Scheduled]:
        yield from self._drain_turns()

    def schedule_soon(self, event: Scheduled) -> None:
        """An event a lifecycle callback asks for; handlers pass it on (`_drain_turns`)."""
        self._turns.append(event)

    # ---- handlers
    def on_sent(self, now: float, event: RequestSent) -> Iterator[Scheduled]:
        request = event.request
        try:
            self.lifecycle.accept(request, now)
        except LifecycleError as e:  # no pool, too large, overloaded: the client's error
            yield from self._fail(request, now, _http_error(e))
            return
        if math.isfinite(request.deadline_at):
            yield request.deadline_at, DeadlineReached(request)
        yield from self._admit(request, now)

    def on_admission_retry(self, now: float, event: AdmissionRetry) -> Iterator[Scheduled]:
        request = event.request
        if event.epoch == request.admission_epoch and request.request_id in self.lifecycle.active:
            pool = request.waiting_for_model
            if pool is WorkerKind.PREFILL:
                self.lifecycle.retry_admission(request, now)
                yield from self._prefill(request, now)
            elif pool is WorkerKind.DECODE or request.waiting_for_decode:
                self.lifecycle.retry_admission(request, now)
                yield from self._admit(request, now)
        yield from self._drain_turns()

    def on_prefill_queued(self, now: float, event: PrefillQueued) -> Iterator[Scheduled]:
        if event.request.request_id not in self.lifecycle.active:
            return  # it ended (its deadline) on the way
        p = self.prefills[event.worker_id]
        p.instance.add(event.job)
        yield from self._next_batch(now, event.worker_id)

    def on_batch_done(self, now: float, event: PrefillBatchDone) -> Iterator[Scheduled]:
        p = self.prefills[event.worker_id]
        batch = p.instance.finish_batch()
        active = self.lifecycle.active
        for job, handoff in zip(batch.jobs, batch.handoffs):
            request = active.get(job.request_id)
            if request is None:
                continue  # it ended while its batch ran: computed, not handed off
            if p.cache is not None:
                p.cache.store_prompt(request.cache_namespace, request.block_keys,
                                     job.num_cached_tokens // self.config.cache.block_size,
                                     job.num_prompt_tokens)
            result = PrefillResult(job.num_cached_tokens, batch.queue_s(job), batch.fetch_s,
                                   batch.compute_s, handoff.transfer_s, handoff.kv_num_bytes)
            yield handoff.ready_at, KvArrived(request, result)
        yield from self._next_batch(now, event.worker_id)

    def on_deadline(self, now: float, event: DeadlineReached) -> Iterator[Scheduled]:
        """The request's deadline: if it has no first token yet, it ends (408) wherever it is."""
        request, lc = event.request, self.lifecycle
        if request.request_id not in lc.active:
            return
        try:
            lc.check_deadline(request, now)
        except LifecycleError as e:
            if request.prefill_worker_id is not None:
                self.prefills[request.prefill_worker_id].instance.abort(request.request_id)
            decode_id = request.decode_worker_id
            if decode_id is not None and lc.forget_decode(request, decode_id, now):
                self.decodes[decode_id].abort(request.request_id)
            yield from self._fail(request, now, _http_error(e))

    def on_kv_arrived(self, now: float, event: KvArrived) -> Iterator[Scheduled]:
        request = event.request
        finish = self.lifecycle.on_prefill_done(request, event.result, now)
        self.observer.on_first_token(request, now)
        yield from self.models.after_work(request.prefill_worker_id, now)
        if finish is not None or request.decode_worker_id is None:
            request.finish_reason = finish or "length"
            yield from self._end(request, now)
            return
        decode = self.decodes[request.decode_worker_id]
        decode.on_kv_arrived(request.request_id, now)
        yield from self._next_step(now, request.decode_worker_id)

    def on_step_done(self, now: float, event: DecodeStepDone) -> Iterator[Scheduled]:
        decode = self.decodes[event.worker_id]
        step, outcome, outputs = decode.complete_step(self.detailed)
        active = self.lifecycle.active
        self.observer.on_step(step, outcome.num_tokens)
        if outputs is not None:
            for out in outputs:
                self.observer.on_step_tokens(active[out.request_id], out.num_tokens, now)
        for finished in outcome.finished:
            request = active[finished.request_id]
            elapsed = now - request.kv_ready_at
            so_far = (request.num_output_tokens if request.choices is None
                      else request.choices[finished.index].num_tokens)
            self.lifecycle.on_tokens(request, finished.num_generated - so_far, elapsed,
                                     finished.finish_reason.value, finished.index)
            if finished.last:
                self.lifecycle.forget_decode(request, event.worker_id, now)
                yield from self._end(request, now)
        yield from self._next_step(now, event.worker_id)

    # ---- stages
    def _admit(self, request: Request, now: float) -> Iterator[Scheduled]:
        lc = self.lifecycle
        if lc.needs_decode(request):
            if (yield from self._wait_for_model(request, WorkerKind.DECODE, now)):
                return
            for worker in lc.decode_order(request):
                decode = self.decodes[worker.worker_id]
                if not decode.admit(lc.decode_request(request)):
                    lc.on_admitted(request, worker, now)
                    self._publish_decode(worker.worker_id)
                    yield from self._drain_turns()
                    break
                lc.on_admit_refused(request, worker)
            else:
                try:
                    retry_at = lc.next_admission_at(request, now)
                except LifecycleError as e:
                    yield from self._fail(request, now, _http_error(e))
                    return
                yield retry_at, AdmissionRetry(request, request.admission_epoch)
                yield from self._drain_turns()
                return
        yield from self._prefill(request, now)

    def _wait_for_model(self, request: Request, kind: WorkerKind, now: float
                        ) -> Iterator[Scheduled]:
        """True (the generator's value) when the request waits for a switch to its model
        before pool `kind`, or has failed waiting."""
        try:
            wake_at = self.lifecycle.model_wait(request, kind, now)
        except LifecycleError as e:
            decode_id = request.decode_worker_id
            if decode_id is not None and self.lifecycle.forget_decode(request, decode_id, now):
                self.decodes[decode_id].abort(request.request_id)
            yield from self._fail(request, now, _http_error(e))
            return True
        if wake_at is None:
            return False
        yield wake_at, AdmissionRetry(request, request.admission_epoch)
        yield from self._drain_turns()
        return True

    def _prefill(self, request: Request, now: float) -> Iterator[Scheduled]:
        if (yield from self._wait_for_model(request, WorkerKind.PREFILL, now)):
            return
        worker_id = self.lifecycle.choose_prefill(request, now).worker_id
        p = self.prefills[worker_id]
        num_cached = 0
        if p.cache is not None:
            num_cached = p.cache.lookup(request.cache_namespace, request.block_keys,
                                        request.num_prompt_tokens) * self.config.cache.block_size
        job = PrefillJob(request.request_id, request.num_prompt_tokens, num_cached,
                         request.stage_at, sends_kv=request.decode_worker_id is not None)
        yield now, PrefillQueued(request, worker_id, job)

    def _next_batch(self, now: float, worker_id: str) -> Iterator[Scheduled]:
        batch: Batch | None = self.prefills[worker_id].instance.start_batch(now)
        self._publish_prefill(worker_id)
        if batch is not None:
            yield batch.done_at, PrefillBatchDone(worker_id)
        else:
            yield from self.models.after_work(worker_id, now)

    def _next_step(self, now: float, worker_id: str) -> Iterator[Scheduled]:
        step = self.decodes[worker_id].start_step(now)
        self._publish_decode(worker_id)
        if step is not None:
            yield step.done_at, DecodeStepDone(worker_id)
        else:
            yield from self.models.after_work(worker_id, now)

    def _on_turn(self, request: Request, now: float) -> None:
        self._turns.append((now, AdmissionRetry(request, request.admission_epoch)))

    def _drain_turns(self) -> Iterator[Scheduled]:
        turns, self._turns = self._turns, []
        yield from turns

    def _end(self, request: Request, now: float) -> Iterator[Scheduled]:
        self.lifecycle.release(request, now)
        yield from self._drain_turns()
        yield from self._after_request(request, now)
        if self.store_decode_kv and request.finish_reason in ("stop", "length"):
            cache = self.prefills[request.prefill_worker_id].cache
            if cache is not None:
                cache.store_decode(request.cache_namespace, request.request_id,
                                   request.num_prompt_tokens, request.num_kept_tokens)
        yield from self.observer.on_done(request, now)

    def _fail(self, request: Request, now: float, error: str) -> Iterator[Scheduled]:
        request.error = error
        self.lifecycle.release(request, now)
        yield from self._drain_turns()
        yield from self._after_request(request, now)
        yield from self.observer.on_done(request, now)

    def _after_request(self, request: Request, now: float) -> Iterator[Scheduled]:
        """The request no longer holds its instances: a switch waiting for them may begin."""
        yield from self.models.after_work(request.decode_worker_id, now)
        yield from self.models.after_work(request.prefill_worker_id, now)

    def _publish_prefill(self, worker_id: str) -> None:
        """What the instance's heartbeat would say, as of now: policies see fresh loads."""
        instance = self.prefills[worker_id].instance
        e = instance.engine
        self.registry.heartbeat(worker_id, WorkerLoad(
            num_running=instance.num_running, num_waiting=e.num_waiting,
            num_queued_tokens=e.num_queued_tokens), 0.0)

    def _publish_decode(self, worker_id: str) -> None:
        e = self.decodes[worker_id].engine
        self.registry.heartbeat(worker_id, WorkerLoad(
            num_running=e.num_running, num_waiting=e.num_waiting,
            kv_used_tokens=e.kv_used_tokens()), 0.0)


def _http_error(error: LifecycleError) -> str:
    """The error as the client records it: the HTTP status the live front end answers with."""
    return f"HTTP {error.status}: {error}"
