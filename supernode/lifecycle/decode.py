"""One decode instance in model time, for the live worker and the simulator alike.

Admission reserves KV (`DecodeEngine`); a request joins the running batch at the first step
boundary after its KV arrived; each step is priced by `supernode.perf.decode_step_time` over the
running batch and its mean context. Steps chain: each starts when the previous ends, or, when
the instance was idle, when the first joining request's KV arrived.

Pure, like `supernode.lifecycle.prefill`: `start_step(now)` says when the step ends. Live, a
KV arrival is anchored to when the prefill instance's modelled transfer completed (carried over
the RPC; it may be in the future, as KV is sent a little early), a request joins only a step
that starts at or after that time, and a step never starts before `now - step time`: a host
that lags catches up at most one step, and the lag beyond that shows as late steps.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from supernode.engine.decode import DecodeEngine, DecodeRequest, StepOutcome, TokenOutput
from supernode.engine.registry import WorkerInfo, WorkerKind
from supernode.perf import DecodeBatch, Deployment, Timing, decode_step_time


@dataclass(frozen=True)
class Step:
    """One priced step: when it runs, and the requests that joined the batch with it, each with
    the model seconds from its KV's arrival to the step's end (its first decode update)."""

    timing: Timing
    num_requests: int
    started_at: float
    done_at: float
    joined: tuple[tuple[str, float], ...]


class DecodeInstance:
    """Batching and step timing of one instance."""

    def __init__(self, engine: DecodeEngine, deployment: Deployment) -> None:
        self.engine = engine
        self.deployment = deployment
        self.free_at = float("-inf")
        self.step: Step | None = None
        """The step in flight, until `complete_step`."""
        self._arriving: list[tuple[float, str]] = []  # (ready at, request id), a heap
        self._ready_at: dict[str, float] = {}

    def use_hardware(self, deployment: Deployment) -> None:
        """Price the next steps on `deployment`: the instance's own, or a copy with slowed
        links while an injected fault lasts. The step in flight keeps its price."""
        self.deployment = deployment

    def info(self, worker_id: str, address: str) -> WorkerInfo:
        """How the instance registers: its shape and capacity, as routing policies see it."""
        d, e = self.deployment, self.engine
        return WorkerInfo(worker_id, WorkerKind.DECODE, address, num_devices=d.num_devices,
                          num_dies=d.num_dies, kv_capacity_tokens=e.kv_capacity_tokens,
                          max_num_seqs=e.max_num_seqs)

    def admit(self, request: DecodeRequest) -> str:
        """Reserve KV for `request`; "" when admitted, else why not."""
        try:
            self.engine.admit(request)
        except ValueError as e:
            return str(e)
        return ""

    def on_kv_arrived(self, request_id: str, at: float) -> bool:
        """The request's KV is complete here at model time `at`; False if it is unknown."""
        if request_id not in self.engine.pending:
            return False
        heapq.heappush(self._arriving, (at, request_id))
        return True

    def abort(self, request_id: str) -> bool:
        self._ready_at.pop(request_id, None)
        return self.engine.abort(request_id)

    def start_step(self, now: float) -> Step | None:
        """Fill the batch and price the next step (None when nothing runs or one is in flight).

        A step starts when the previous one ends, or, from idle, when the first waiting KV is
        ready; every KV ready by then joins (up to the batch cap)."""
        if self.step is not None:
            return None
        if self.engine.running or self.engine.ready:
            begin = self.free_at
            self._release_arrivals(begin)
            joined_ids = self.engine.schedule()
        else:  # idle: start when the first KV that is still wanted is ready
            joined_ids = []
            while not self.engine.running:
                if not self._arriving:
                    return None
                begin = max(self.free_at, self._arriving[0][0])
                self._release_arrivals(begin)
                joined_ids = self.engine.schedule()
        num = self.engine.num_running
        timing = decode_step_time(DecodeBatch(num, self.engine.mean_kv_len()), self.deployment)
        ready = [self._ready_at.pop(r) for r in joined_ids]
        started_at = max(begin, now - timing.total_s)
        done_at = started_at + timing.total_s
        self.free_at = done_at
        joined = tuple((r, done_at - at) for r, at in zip(joined_ids, ready))
        self.step = Step(timing, num, started_at, done_at, joined)
        return self.step

    def _release_arrivals(self, until: float) -> None:
        """KV ready by `until` enters the engine's ready queue (in order of readiness)."""
        arriving = self._arriving
        while arriving and arriving[0][0] <= until:
            at, request_id = heapq.heappop(arriving)
            if self.engine.on_kv_arrived(request_id):  # False: aborted meanwhile
                self._ready_at[request_id] = at

    @property
    def num_arriving(self) -> int:
        """Requests whose KV has arrived but is not yet ready in the model's time."""
        return len(self._arriving)

    def step_outputs(self) -> list[TokenOutput]:
        """Each running request's tokens in the step in flight (known from its start)."""
        if self.step is None:
            raise RuntimeError("no step in flight")
        return self.engine.step_outputs()

    def complete_step(self, detailed: bool = False
                      ) -> tuple[Step, StepOutcome, list[TokenOutput] | None]:
        """End the step in flight: the batch advances, ended requests free their KV.

        `detailed` also returns each request's tokens of the step (O(batch), for streaming)."""
        step, self.step = self.step, None
        if step is None:
            raise RuntimeError("no step in flight")
        outputs = self.engine.step_outputs() if detailed else None
        return step, self.engine.complete_step(), outputs
