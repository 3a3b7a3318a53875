"""Every decision the global scheduler makes about a request, for both drivers.

The live scheduler (services/scheduler/flow.py: gRPC, HTTP) and the simulator
(supernode/sim/driver.py: events in virtual time) carry out the same sequence, asking this
class at each step; neither decides anything of its own:

  accept (unknown model: 404; no pool: 503; can never fit: 400; would wait too long: 429) ->
  [several served models] before each pool, `model_wait`: no instance there holds the
      request's model -> it waits in that model's line while one switches to it
      (supernode.lifecycle.models; `on_switch` tells the driver to carry the switch out,
      `on_worker_update` hears of its end) ->
  [needs_decode] decode admission: `decode_order` -> reserve -> admitted | refused; none
      admitted: the request joins the FIFO of requests waiting for decode room
      (`next_admission_at`): only its head tries again, when decode KV is freed (the driver's
      `on_turn` is called) or after a back-off; past the admission wait it fails ->
  `choose_prefill` -> prefill (fetch, queue, batch, KV hand-off) -> `on_prefill_done` (the
      first token) | `on_prefill_lost` ->
  `on_tokens` per decode step ... -> `release` (finished | aborted | failed)
  a worker lost on the way: `on_worker_lost` (back-off, route around it; too many: fail) and
  the request resumes from prompt + tokens so far.
Times are model seconds on the driver's clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from supernode.config import ClusterConfig
from supernode.deployment import check_memory, instance_deployment, prefill_token_budget
from supernode.engine.decode import DecodeRequest
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry
from supernode.lifecycle.admission import LoadShedder
from supernode.lifecycle.errors import RequestFailed, RequestTimedOut
from supernode.lifecycle.models import ModelStage, ModelSwitch, SwitchDone
from supernode.lifecycle.request import Request, RequestStatus
from supernode.lifecycle.routing import Router
from supernode.policy import make_policy
from supernode.policy.kv_affinity import uses_local_cache

MAX_FAILOVER_BACKOFF_S = 0.5


@dataclass(frozen=True, slots=True)
class PrefillResult:
    """What a prefill instance reports for one request (maps onto PrefillResponse)."""

    num_cached_tokens: int
    queue_s: float
    fetch_s: float
    compute_s: float
    transfer_s: float
    kv_num_bytes: int


class Lifecycle:
    """The scheduler's decisions and bookkeeping, over a live `WorkerRegistry`.

    `on_turn(request, now)` is how the lifecycle tells the driver that a request waiting for
    decode room, or for a switch to its model, should try again now (the live flow wakes its
    task, the simulator schedules its retry). `on_switch(switch, now)` tells it to have an
    instance switch models (`ModelSwitch`)."""

    def __init__(self, config: ClusterConfig, registry: WorkerRegistry,
                 on_turn: Callable[[Request, float], None] = lambda request, now: None,
                 on_switch: Callable[[ModelSwitch, float], None] = lambda switch, now: None
                 ) -> None:
        self.limits = config.scheduler
        self.on_turn = on_turn
        self.on_switch = on_switch
        self.registry = registry
        self.models = ModelStage(config, registry, lambda r, now: self.on_turn(r, now),
                                 lambda switch, now: self.on_switch(switch, now))
        cache = config.cache
        local = cache.enabled and uses_local_cache(config.routing_policy)
        self.router = Router(registry, make_policy(config.routing_policy),
                             make_policy(config.routing_policy),
                             cache.block_size if local else 0, self.models)
        prefill = instance_deployment(config, "prefill")
        self.shedder = LoadShedder(self.limits, prefill, prefill_token_budget(config, prefill))
        self.overcommitted = bool(check_memory(config))
        """The deployment does not fit in HBM: it runs only with `allow_overcommit`, and every
        request says so."""
        self.active: dict[str, Request] = {}
        self.waiting: OrderedDict[str, Request] = OrderedDict()
        """Requests waiting for decode KV room, first come first served."""

    @property
    def routes_on_blocks(self) -> bool:
        """Whether requests need their prompt's block keys for routing."""
        return self.router.block_size > 0

    # ---- arrival
    def accept(self, request: Request, now: float, timeout_s: float | None = None) -> None:
        """Admit `request` to the system or raise UnknownModel, NoWorkers, RequestTooLarge or
        Overloaded."""
        request.model = self.models.model(request.model).name
        self.router.check_pools()
        self.router.check_fits(request)
        self.shedder.num_waiting_model = self.models.num_waiting
        self.shedder.check(request.num_prompt_tokens,
                           self.models.holders(request.model, WorkerKind.PREFILL), now)
        limits = self.limits
        timeout_s = timeout_s if timeout_s is not None else limits.request_timeout_s
        request.deadline_at = now + timeout_s if timeout_s else float("inf")
        request.stage_at = min(now, request.arrived_at)  # the front end's work is absorbed
        request.admission_deadline = now + limits.admission_wait_s
        request.admission_backoff_s = limits.admission_backoff_s
        request.overcommitted = self.overcommitted
        self.active[request.request_id] = request
        self.models.on_accepted(request, self.needs_decode(request), now)

    def needs_decode(self, request: Request) -> bool:
        """A request with one token left needs no decode instance: its prefill samples it."""
        return request.num_remaining > 1

    # ---- several models
    def model_wait(self, request: Request, kind: WorkerKind, now: float) -> float | None:
        """Before the `kind` pool: None when an instance there holds the request's model, else
        the model time to wake at unless `on_turn` comes first (the request waits for a
        switch). Raises RequestTimedOut or RequestFailed when it may wait no longer."""
        if self.models.single:
            return None
        self.check_deadline(request, now)
        wake_at = self.models.wait_for(request, kind, now)
        if wake_at is not None and self._stop_waiting(request):
            self._next_turn(now)  # out of the decode-room line: its next may go first
        return wake_at

    def on_worker_update(self, worker_id: str, now: float) -> SwitchDone | None:
        """A worker registered, changed state or model, or left; the switch it completed."""
        return self.models.on_worker_update(worker_id, now)

    def on_switch_failed(self, worker_id: str, now: float) -> ModelSwitch | None:
        """The driver could not carry out the worker's switch; the switch it was."""
        return self.models.on_switch_failed(worker_id, now)

    # ---- decode admission
    def decode_order(self, request: Request) -> Iterator[WorkerInfo]:
        """Decode instances to try, in the policy's order. Each one yielded is counted against
        the worker at once (concurrent arrivals must see it) until `on_admit_refused`."""
        for worker in self.router.decode_order(request):
            self.registry.add_inflight(worker.worker_id, +1)
            yield worker

    def on_admitted(self, request: Request, worker: WorkerInfo, now: float) -> None:
        if self._stop_waiting(request):
            self._next_turn(now)  # the next in line may fit too
        request.decode_worker_id = worker.worker_id
        request.decode_reserved = True
        self.router.on_decode_chosen(request, worker)
        self.models.on_routed(request, worker, now)

    def on_admit_refused(self, request: Request, worker: WorkerInfo) -> None:
        self.registry.add_inflight(worker.worker_id, -1)

    def retry_admission(self, request: Request, now: float) -> None:
        """A waiting request tries again at model time `now` (its turn, its poll or its
        deadline): were it admitted, its prefill stage starts then."""
        request.stage_at = now

    def next_admission_at(self, request: Request, now: float) -> float:
        """No decode instance had room: the request waits in line until `on_turn` or the time
        returned (model seconds): the head of the line polls with a doubling back-off, the
        others only wake at their deadline. Each call opens a new wait
        (`request.admission_epoch`): a wake-up of an older one is stale. Raises RequestFailed
        once the admission wait or the request's deadline has passed."""
        self.check_deadline(request, now)
        if now >= request.admission_deadline:
            raise RequestFailed("no decode instance had KV room within the admission wait")
        self.models.left(request, WorkerKind.DECODE, now)
        if not request.waiting_for_decode:
            request.waiting_for_decode = True
            self.waiting[request.request_id] = request
            self.shedder.num_waiting_decode += 1
        request.admission_epoch += 1
        wake_at = min(request.admission_deadline, request.deadline_at)
        if next(iter(self.waiting)) == request.request_id:
            backoff = request.admission_backoff_s
            request.admission_backoff_s = min(self.limits.admission_backoff_max_s, 2 * backoff)
            wake_at = min(wake_at, now + backoff)
        return wake_at

    # ---- prefill
    def choose_prefill(self, request: Request, now: float) -> WorkerInfo:
        worker = self.router.choose_prefill(request)
        request.status = RequestStatus.PREFILLING
        request.prefill_worker_id = worker.worker_id
        self.registry.add_inflight(worker.worker_id, +1)
        self.models.on_routed(request, worker, now)
        self.shedder.on_prefill_sent(worker.worker_id, self._prefill_len(request), now)
        return worker

    def on_prefill_done(self, request: Request, result: PrefillResult, now: float) -> str | None:
        """The prefill sampled one token; its finish reason if the request ends with it."""
        self._prefill_ended(request)
        if request.first_token_at is None:
            request.num_cached_tokens = result.num_cached_tokens
            request.fetch_s, request.queue_s = result.fetch_s, result.queue_s
            request.compute_s, request.transfer_s = result.compute_s, result.transfer_s
            request.first_token_at = now
            request.lag_s = max(0.0, now - request.stage_at - request.modelled_ttft_s)
        request.kv_num_bytes += result.kv_num_bytes
        if request.choices is None:
            request.num_output_tokens += 1
            if request.num_remaining <= 0:
                return "length"
        else:  # each running choice samples its token from the one prefill
            for choice in request.running_choices():
                choice.num_tokens += 1
                request.num_output_tokens += 1
                if choice.num_tokens >= request.max_tokens:
                    choice.finish_reason = "length"
            if not request.running_choices():
                return "length"
        request.status = RequestStatus.DECODING
        request.kv_ready_at = now
        return None

    def on_prefill_lost(self, request: Request) -> None:
        self._prefill_ended(request)

    # ---- decode
    def decode_request(self, request: Request) -> DecodeRequest:
        """What a decode instance is asked to reserve for the request's next attempt: its
        prompt, and each choice that will still run after the prefill's token."""
        generated = request.num_output_tokens + 1
        choices: tuple[tuple[int, int], ...] = ()
        if request.choices is not None:
            choices = tuple((c.index, c.num_tokens + 1) for c in request.running_choices()
                            if request.max_tokens - c.num_tokens > 1)
            generated = choices[0][1]
        return DecodeRequest(request.request_id, request.num_prompt_tokens, request.max_tokens,
                             generated, request.seed, request.ignore_eos, choices)

    def on_tokens(self, request: Request, num_tokens: int, elapsed_s: float,
                  finish_reason: str | None, index: int = 0) -> bool:
        """A decode step gave choice `index` `num_tokens`; `elapsed_s` model seconds since its
        previous ones (the first time: since the KV arrived). The request ends with its last
        choice. False when the tokens do not count (the choice had ended for the client)."""
        if request.choices is None:
            request.num_output_tokens += num_tokens
            request.modelled_decode_s += elapsed_s
            if finish_reason is not None:
                request.finish_reason = finish_reason
                request.finished_on_decode = True
            return True
        choice = request.choices[index]
        if choice.finish_reason is not None:
            return False
        request.num_output_tokens += num_tokens
        choice.num_tokens += num_tokens
        choice.decode_s += elapsed_s
        request.modelled_decode_s = max(request.modelled_decode_s, choice.decode_s)
        if finish_reason is not None:
            choice.finish_reason = finish_reason
            if not request.running_choices():
                request.finish_reason = finish_reason
                # Decode has freed it only if no choice ended early (that one still runs).
                request.finished_on_decode = not any(c.ended_early for c in request.choices)
        return True

    def end_choice(self, request: Request, index: int, finish_reason: str) -> None:
        """Choice `index` ended for the client before decode ended it (a stop string): its
        later tokens are not counted. With the last choice the request ends."""
        choice = request.choices[index]
        if choice.finish_reason is not None:
            return
        choice.finish_reason, choice.ended_early = finish_reason, True
        if not request.running_choices():
            request.finish_reason = finish_reason

    # ---- failures and the end
    def on_worker_lost(self, request: Request, worker_id: str | None, now: float) -> float:
        """Count a lost attempt; the model time to retry at (routing around the worker).
        Raises RequestFailed past `scheduler.max_failovers`."""
        if worker_id is not None:
            self.forget_decode(request, worker_id, now)
            request.lost_worker_ids.add(worker_id)
        request.num_failovers += 1
        if request.num_failovers > self.limits.max_failovers:
            raise RequestFailed(f"gave up after {request.num_failovers - 1} failovers")
        request.admission_deadline = now + self.limits.admission_wait_s
        delay = min(MAX_FAILOVER_BACKOFF_S,
                    self.limits.failover_backoff_s * 2 ** request.num_failovers)
        request.stage_at = now + delay
        return request.stage_at

    def forget_decode(self, request: Request, worker_id: str, now: float) -> bool:
        """Stop counting the request against decode `worker_id` (idempotent); True if it held
        a reservation there that someone should free. Its KV room goes to the next in line."""
        if request.decode_worker_id == worker_id and request.decode_reserved:
            self.registry.add_inflight(worker_id, -1)
            request.decode_reserved = False
            self._next_turn(now)
            return True
        return False

    def release(self, request: Request, now: float) -> RequestStatus:
        """The request is over: its final status. Frees the scheduler's accounting; the driver
        frees the decode reservation when this returns True from `forget_decode` first."""
        self.active.pop(request.request_id, None)
        self.models.forget(request, now)
        if request.status is RequestStatus.PREFILLING and request.prefill_worker_id:
            self._prefill_ended(request)
        if self._stop_waiting(request):
            self._next_turn(now)
        reason = request.finish_reason
        status = (RequestStatus.FINISHED if reason in ("stop", "length")
                  else RequestStatus.ABORTED if reason == "abort" else RequestStatus.FAILED)
        request.status = status
        request.finished_at = now
        if request.decode_worker_id and status is RequestStatus.FINISHED:
            self.shedder.on_decode_finished(now)
        return status

    def _stop_waiting(self, request: Request) -> bool:
        """Take the request out of the line; True if it was in it."""
        request.admission_backoff_s = self.limits.admission_backoff_s
        if not request.waiting_for_decode:
            return False
        request.waiting_for_decode = False
        del self.waiting[request.request_id]
        self.shedder.num_waiting_decode -= 1
        return True

    def _next_turn(self, now: float) -> None:
        """Decode room may have freed: the head of the line tries again now."""
        if self.waiting:
            self.on_turn(next(iter(self.waiting.values())), now)

    def check_deadline(self, request: Request, now: float) -> None:
        """Raise RequestTimedOut when the request's deadline has passed without its first
        token (the driver then aborts what it has in flight and answers 408)."""
        if now >= request.deadline_at and request.first_token_at is None:
            raise RequestTimedOut("the request's deadline passed before its first token "
                                  f"({request.deadline_at - request.arrived_at:g} s)")

    def _prefill_len(self, request: Request) -> int:
        return request.num_prompt_tokens + request.num_resume_tokens

    def _prefill_ended(self, request: Request) -> None:
        worker_id = request.prefill_worker_id
        if worker_id is None or request.status is not RequestStatus.PREFILLING:
            return
        self.registry.add_inflight(worker_id, -1)
        self.shedder.on_prefill_ended(worker_id, self._prefill_len(request))
        request.status = RequestStatus.QUEUED
