"""One prefill instance in model time, for the live worker and the simulator alike.

Per request: FCFS token-budget batches (`PrefillEngine`) priced by `supernode.perf.prefill_time`,
which includes reading the batch's cached prefixes from the prefix cache (`cache_source`) ->
its whole KV is handed off to the chosen decode instance over RDMA once the batch ends (paper
s4.3.3), the batch's hand-offs sharing the instance's NICs (`supernode.perf.kv_handoff_times`).

Pure: every call takes `now` and says when things happen; the live worker sleeps until then on
its clock, the simulator schedules events. Time is anchored to the request, not to the process:
a job's `arrived_at` is its request's timeline (its arrival at the scheduler, carried over the
RPC as an age) and a batch starts at max(instance free, last job's arrival, now - batch time).
The emulator's own overhead is absorbed while it is shorter than a batch; beyond that the batch
ends late and the driver reports the lag.
"""

from __future__ import annotations

from dataclasses import dataclass

from supernode.engine.prefill import PrefillEngine, PrefillJob
from supernode.engine.registry import WorkerInfo, WorkerKind
from supernode.perf import (
    Deployment,
    PrefillBatch,
    Timing,
    kv_capacity_tokens,
    kv_handoff_times,
    prefill_time,
)


@dataclass(frozen=True, slots=True)
class Handoff:
    """One request's KV leaving a finished batch: its size and when it is complete at decode."""

    request_id: str
    kv_num_bytes: int
    transfer_s: float
    ready_at: float


@dataclass(frozen=True)
class Batch:
    """One packed batch: its jobs, its pricing, when it runs and each request's hand-off."""

    jobs: tuple[PrefillJob, ...]
    timing: Timing
    started_at: float
    done_at: float
    handoffs: tuple[Handoff, ...]

    def queue_s(self, job: PrefillJob) -> float:
        return max(0.0, self.started_at - job.arrived_at)

    @property
    def fetch_s(self) -> float:
        """The batch's read of its cached prefixes (the start of its `timing`)."""
        return self.timing.breakdown.get("cache_fetch", 0.0)

    @property
    def compute_s(self) -> float:
        """The rest of the batch: its forward pass."""
        return self.timing.total_s - self.fetch_s


class PrefillInstance:
    """Batching, pricing and hand-off timing of one instance. `cache_source` is where cached
    prefixes are read from (`supernode.perf.CACHE_SOURCES`: EMS over UB or VPC, or the
    instance's own DRAM under kv-affinity)."""

    def __init__(self, engine: PrefillEngine, deployment: Deployment,
                 cache_source: str = "ems_ub") -> None:
        self.engine = engine
        self.deployment = deployment
        self.cache_source = cache_source
        self.kv_bytes_per_token = deployment.model.kv_bytes_per_token(deployment.kv_dtype)
        self.free_at = float("-inf")
        self.batch: Batch | None = None
        """The batch in flight, until `finish_batch`."""

    def use_hardware(self, deployment: Deployment) -> None:
        """Price the next batches (their cache reads included: `cache_source` names a link of
        the deployment's hardware) and hand-offs on `deployment`: the instance's own, or a
        copy with slowed links while an injected fault lasts. The batch in flight keeps its
        price."""
        self.deployment = deployment

    def add(self, job: PrefillJob) -> None:
        self.engine.add(job)

    def abort(self, request_id: str) -> bool:
        return self.engine.abort(request_id)

    @property
    def num_running(self) -> int:
        return len(self.batch.jobs) if self.batch else 0

    def info(self, worker_id: str, address: str) -> WorkerInfo:
        """How the instance registers: its shape and capacity, as routing policies see it."""
        d = self.deployment
        return WorkerInfo(worker_id, WorkerKind.PREFILL, address, num_devices=d.num_devices,
                          num_dies=d.num_dies, kv_capacity_tokens=kv_capacity_tokens(d),
                          max_num_batched_tokens=self.engine.max_num_batched_tokens)

    def next_begin(self) -> float | None:
        """Model time the next batch would begin (None when idle or a batch is in flight)."""
        if self.batch is not None or not self.engine.waiting:
            return None
        return max(self.free_at, self.engine.waiting[0].arrived_at)

    def start_batch(self, now: float) -> Batch | None:
        """Take and price the next batch (None when idle or busy).

        The batch starts when the instance is free and its first job has arrived, and packs
        only the jobs that had arrived by then: a job that reached a late worker in the same
        moment as a later one is still batched as the model's timeline says."""
        begin = self.next_begin()
        if begin is None:
            return None
        jobs = tuple(self.engine.next_batch(arrived_by=begin))
        timing = prefill_time(PrefillBatch(tuple(j.num_prompt_tokens for j in jobs),
                                           tuple(j.num_cached_tokens for j in jobs),
                                           self.cache_source), self.deployment)
        started_at = max(begin, now - timing.total_s)
        done_at = started_at + timing.total_s
        self.free_at = done_at
        self.batch = Batch(jobs, timing, started_at, done_at, self._handoffs(jobs, done_at))
        return self.batch

    def finish_batch(self) -> Batch:
        """The batch in flight has ended (at its `done_at`); the instance may take the next."""
        batch, self.batch = self.batch, None
        if batch is None:
            raise RuntimeError("no batch in flight")
        return batch

    def _handoffs(self, jobs: tuple[PrefillJob, ...], done_at: float) -> tuple[Handoff, ...]:
        """Each job's KV transfer, all starting at `done_at` and sharing the instance's NICs."""
        sending = [j for j in jobs if j.sends_kv]
        times = iter(kv_handoff_times([j.num_prompt_tokens * self.kv_bytes_per_token
                                       for j in sending], self.deployment) if sending else ())
        handoffs = []
        for job in jobs:
            if job.sends_kv:
                seconds = next(times).total_s
                num_bytes = job.num_prompt_tokens * self.kv_bytes_per_token
            else:
                seconds, num_bytes = 0.0, 0
            handoffs.append(Handoff(job.request_id, num_bytes, seconds, done_at + seconds))
        return tuple(handoffs)
