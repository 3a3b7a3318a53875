"""A whole deployment in virtual time: routing, admission, prefill, KV transfer, decode.

Stages and their events (the live path is told once in services/scheduler/flow.py):
  RequestSent -> decode admission: the routing policy picks a decode instance whose engine
  reserves KV for prompt + max_tokens (refused: the next; none fits: `AdmissionRetry` with
  back-off until `ADMISSION_WAIT_S`) -> the policy picks a prefill instance; the prefix lookup
  (shared EMS, or the instance's own cache under kv-affinity) costs the fetch on its link ->
  `PrefillQueued` -> FCFS token-budget batch -> `PrefillBatchDone`: new blocks stored, KV sent
  over RDMA -> `KvArrived`: the client gets the first token, the decode engine gets the request
  -> `DecodeStepDone` per step (MTP: 1..1+mtp tokens, one chunk) -> finished.
Policies see the workers as `WorkerInfo` with the instances' current load, as if heartbeats
were instant. All randomness is seeded per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from supernode.config import ClusterConfig
from supernode.deployment import instance_deployment
from supernode.engine.decode import DecodeRequest
from supernode.engine.prefill import PrefillJob
from supernode.engine.registry import WorkerKind, WorkerRegistry
from supernode.hardware import LOCAL_DRAM_LINK, Link
from supernode.perf import transfer_time
from supernode.policy import RouteRequest, make_policy
from supernode.policy.kv_affinity import uses_local_cache
from supernode.sim.cache import BlockLru, num_usable_blocks
from supernode.sim.instances import (
    DecodeInstance,
    PrefillInstance,
    build_decodes,
    build_prefills,
)
from supernode.sim.kernel import Scheduled
from supernode.sim.request import SimRequest

ADMISSION_WAIT_S = 30.0
"""Seconds a request may wait for decode KV room (the live scheduler's default)."""
ADMISSION_BACKOFF_S = (0.01, 0.5)
"""First and largest retry interval of decode admission; doubles per retry, as live."""


@dataclass(frozen=True)
class RequestSent:
    request: SimRequest


@dataclass(frozen=True)
class AdmissionRetry:
    request: SimRequest


@dataclass(frozen=True)
class PrefillQueued:
    request: SimRequest


@dataclass(frozen=True)
class PrefillBatchDone:
    worker_id: str
    started_at: float
    batch_s: float


@dataclass(frozen=True)
class KvArrived:
    request: SimRequest


@dataclass(frozen=True)
class DecodeStepDone:
    worker_id: str
    step_s: float


class SimCluster:
    """Instances, policies and caches of one config; `handlers()` feeds the event loop.
    `on_done(request, now)` is told when a request finished or failed; it may return events."""

    def __init__(self, config: ClusterConfig, vocab_size: int, eos_token_id: int,
                 ignore_eos: bool, on_done: Callable[[SimRequest, float], list[Scheduled]]
                 ) -> None:
        """`ignore_eos` is sent with every request (loadgen's `--ignore-eos`)."""
        self.config = config
        self.ignore_eos = ignore_eos
        self.on_done = on_done
        self.local_cache = uses_local_cache(config.routing_policy)
        self.prefills = {p.worker_id: p for p in build_prefills(config, self._caches())}
        self.decodes = {d.worker_id: d for d in build_decodes(config, vocab_size, eos_token_id)}
        self.prefill_policy = make_policy(config.routing_policy)
        self.decode_policy = make_policy(config.routing_policy)
        self.registry = WorkerRegistry(lease_s=float("inf"))
        for worker in (*self.prefills.values(), *self.decodes.values()):
            self.registry.register(worker.info(), 0.0)
        deployment = next(iter(self.prefills.values())).deployment
        self.kv_bytes_per_token = deployment.model.kv_bytes_per_token(deployment.kv_dtype)
        self.rdma = deployment.hardware.link("rdma")
        self.cache_link = self._cache_link(deployment)
        self.requests: dict[str, SimRequest] = {}

    def handlers(self) -> dict[type, Callable[[float, object], Iterator[Scheduled]]]:
        return {RequestSent: self.on_sent, AdmissionRetry: self.on_sent,
                PrefillQueued: self.on_prefill_queued, PrefillBatchDone: self.on_batch_done,
                KvArrived: self.on_kv_arrived, DecodeStepDone: self.on_step_done}

    # ---- build
    def _caches(self) -> list[BlockLru | None]:
        cache, n = self.config.cache, self.config.num_prefill
        if not cache.enabled:
            return [None] * n
        d = instance_deployment(self.config, "prefill")
        block_bytes = cache.block_size * d.model.kv_bytes_per_token(d.kv_dtype)
        if uses_local_cache(self.config.routing_policy):
            return [BlockLru(max(1, cache.capacity_bytes // n // block_bytes)) for _ in range(n)]
        shared = BlockLru(max(1, cache.capacity_bytes // block_bytes))
        return [shared] * n

    def _cache_link(self, deployment) -> Link:
        if self.local_cache:
            return LOCAL_DRAM_LINK
        return deployment.hardware.link(f"ems_{self.config.cache.plane}")

    # ---- handlers
    def on_sent(self, now: float, event: RequestSent | AdmissionRetry) -> Iterator[Scheduled]:
        r = event.request
        if isinstance(event, RequestSent):
            self.requests[r.request_id] = r
            r.sent_at = now
            r.admission_deadline = now + ADMISSION_WAIT_S
            r.admission_backoff_s = ADMISSION_BACKOFF_S[0]
        if r.max_tokens > 1 and not self._admit(r):
            if now > r.admission_deadline:
                r.error = "no decode instance had KV room within the admission wait"
                yield from self._finish(now, r)
                return
            yield now + r.admission_backoff_s, AdmissionRetry(r)
            r.admission_backoff_s = min(ADMISSION_BACKOFF_S[1], 2 * r.admission_backoff_s)
            return
        yield self._route_prefill(now, r)

    def on_prefill_queued(self, now: float, event: PrefillQueued) -> Iterator[Scheduled]:
        r = event.request
        r.enqueued_at = now
        instance = self.prefills[r.prefill_id]
        instance.engine.add(PrefillJob(r.request_id, r.num_prompt_tokens, r.num_cached_tokens))
        if not instance.busy:
            yield from self._next_batch(now, instance)

    def on_batch_done(self, now: float, event: PrefillBatchDone) -> Iterator[Scheduled]:
        instance = self.prefills[event.worker_id]
        for job in instance.batch:
            r = self.requests[job.request_id]
            r.queue_s, r.compute_s = event.started_at - r.enqueued_at, event.batch_s
            if instance.cache is not None:
                instance.cache.store(r.block_keys)
            if r.decode_id:
                r.transfer_s = transfer_time(r.num_prompt_tokens * self.kv_bytes_per_token,
                                             self.rdma).total_s
            yield now + r.transfer_s, KvArrived(r)
        yield from self._next_batch(now, instance)

    def on_kv_arrived(self, now: float, event: KvArrived) -> Iterator[Scheduled]:
        r = event.request
        self.registry.add_inflight(r.prefill_id, -1)
        r.chunk_times.append(now)
        r.num_output_tokens = 1
        if not r.decode_id:
            r.finish_reason = "length"
            yield from self._finish(now, r)
            return
        decode = self.decodes[r.decode_id]
        decode.engine.on_kv_arrived(r.request_id)
        r.kv_arrived_at = now
        if not decode.busy:
            yield from self._next_step(now, decode)

    def on_step_done(self, now: float, event: DecodeStepDone) -> Iterator[Scheduled]:
        decode = self.decodes[event.worker_id]
        for out in decode.engine.complete_step():
            r = self.requests[out.request_id]
            r.chunk_times.append(now)
            r.num_output_tokens += len(out.token_ids)
            # As on the live decode: the first update counts the wait for a step boundary.
            r.modelled_decode_s += event.step_s if r.kv_arrived_at is None else now - r.kv_arrived_at
            r.kv_arrived_at = None
            if out.finish_reason is not None:
                r.finish_reason = out.finish_reason.value
                self.registry.add_inflight(r.decode_id, -1)
                yield from self._finish(now, r)
        yield from self._next_step(now, decode)

    # ---- stages
    def _admit(self, r: SimRequest) -> bool:
        """Reserve KV on a decode instance the policy picks among those that fit."""
        candidates = self._views(WorkerKind.DECODE)
        route = self._route(r)
        while candidates:
            worker = self.decode_policy.choose(route, candidates)
            candidates = [w for w in candidates if w.worker_id != worker.worker_id]
            engine = self.decodes[worker.worker_id].engine
            if not engine.can_admit(r.num_prompt_tokens, r.max_tokens):
                continue
            engine.admit(DecodeRequest(r.request_id, r.num_prompt_tokens, r.max_tokens,
                                       num_generated=1, seed=r.seed,
                                       ignore_eos=self.ignore_eos))
            self.decode_policy.on_routed(route, worker)
            self.registry.add_inflight(worker.worker_id, +1)
            r.decode_id = worker.worker_id
            return True
        return False

    def _route_prefill(self, now: float, r: SimRequest) -> Scheduled:
        route = self._route(r)
        worker = self.prefill_policy.choose(route, self._views(WorkerKind.PREFILL))
        self.prefill_policy.on_routed(route, worker)
        self.registry.add_inflight(worker.worker_id, +1)
        r.prefill_id = worker.worker_id
        cache = self.prefills[worker.worker_id].cache
        if cache is not None:
            block_size = self.config.cache.block_size
            num_hits = cache.lookup(r.block_keys,
                                    num_usable_blocks(r.num_prompt_tokens, block_size))
            r.num_cached_tokens = num_hits * block_size
            if num_hits:
                num_bytes = r.num_cached_tokens * self.kv_bytes_per_token
                r.fetch_s = transfer_time(num_bytes, self.cache_link).total_s
        return now + r.fetch_s, PrefillQueued(r)

    def _next_batch(self, now: float, instance: PrefillInstance) -> Iterator[Scheduled]:
        batch_s = instance.start_batch()
        if batch_s is not None:
            yield now + batch_s, PrefillBatchDone(instance.worker_id, now, batch_s)

    def _next_step(self, now: float, decode: DecodeInstance) -> Iterator[Scheduled]:
        step_s = decode.start_step()
        if step_s is not None:
            yield now + step_s, DecodeStepDone(decode.worker_id, step_s)

    def _finish(self, now: float, r: SimRequest) -> Iterator[Scheduled]:
        del self.requests[r.request_id]
        yield from self.on_done(r, now)

    def _views(self, kind: WorkerKind):
        """Live workers of `kind` with their current load, as policies see them."""
        pool = self.prefills if kind is WorkerKind.PREFILL else self.decodes
        for worker_id, instance in pool.items():
            self.registry.heartbeat(worker_id, instance.load(), 0.0)
        return self.registry.live(kind)

    def _route(self, r: SimRequest) -> RouteRequest:
        block_size = self.config.cache.block_size if self.local_cache else 0
        return RouteRequest(r.request_id, r.num_prompt_tokens, r.max_tokens,
                            r.block_keys if self.local_cache else (), block_size)
