"""Token-budget batching of one prefill instance.

A request's stages on a prefill instance:
  fetching (cached prefix read from EMS) -> waiting (FCFS queue) -> computing (one packed batch)
  -> transferring (KV to the chosen decode instance) -> done

Batches are packed FCFS up to `max_num_batched_tokens` of uncached prompt tokens; a prompt
larger than the whole budget runs alone rather than starving.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PrefillJob:
    """A prompt waiting for compute: `num_cached_tokens` of it came from the cache.

    `arrived_at` is the model time it joined the queue; `sends_kv` is False for a request that
    ends with its first token (no decode instance receives its KV)."""

    request_id: str
    num_prompt_tokens: int
    num_cached_tokens: int = 0
    arrived_at: float = 0.0
    sends_kv: bool = True

    @property
    def num_new_tokens(self) -> int:
        return self.num_prompt_tokens - self.num_cached_tokens


class PrefillEngine:
    """FCFS queue packed into batches under a token budget."""

    def __init__(self, max_num_batched_tokens: int) -> None:
        if max_num_batched_tokens < 1:
            raise ValueError("max_num_batched_tokens must be >= 1")
        self.max_num_batched_tokens = max_num_batched_tokens
        self.waiting: deque[PrefillJob] = deque()
        self.num_queued_tokens = 0
        """Uncached prompt tokens waiting."""

    def add(self, job: PrefillJob) -> None:
        """Queue `job` in order of arrival: a job that reached a live worker after a later one
        (its RPC took longer) takes its place by its `arrived_at`."""
        waiting = self.waiting
        if waiting and job.arrived_at < waiting[-1].arrived_at:
            i = len(waiting) - 1
            while i > 0 and waiting[i - 1].arrived_at > job.arrived_at:
                i -= 1
            waiting.insert(i, job)
        else:
            waiting.append(job)
        self.num_queued_tokens += job.num_new_tokens

    def abort(self, request_id: str) -> bool:
        for job in self.waiting:
            if job.request_id == request_id:
                self.waiting.remove(job)
                self.num_queued_tokens -= job.num_new_tokens
                return True
        return False

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    def next_batch(self, arrived_by: float = float("inf")) -> list[PrefillJob]:
        """Pop the next batch (empty when nothing waits): waiting jobs in order, up to the
        budget, that had arrived by model time `arrived_by`."""
        batch: list[PrefillJob] = []
        budget = self.max_num_batched_tokens
        while self.waiting:
            job = self.waiting[0]
            if (batch and job.num_new_tokens > budget) or job.arrived_at > arrived_by:
                break
            batch.append(self.waiting.popleft())
            self.num_queued_tokens -= job.num_new_tokens
            budget -= job.num_new_tokens
            if budget <= 0:
                break
        return batch
