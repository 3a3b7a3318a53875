"""Admission control: refuse at once (HTTP 429, Retry-After) what would wait too long.

A request's predicted wait before its prefill can start is the modelled time of the work ahead
of it, not a count:
- prefill: the uncached prompt tokens this scheduler has sent to the least-loaded prefill
  instance and not yet seen finish, over that instance's modelled prefill rate for prompts of
  this request's length (`supernode.perf.prefill_time` of a full token budget; the queue is
  FCFS, so nothing that arrives later delays it);
- decode: when requests are already waiting for decode KV room, they go first, and room frees
  at the rate decode requests finish (measured, decayed over `RATE_WINDOW_S` model seconds;
  before any has finished the rate is unknown and only the count limit applies).
A request is shed when that wait exceeds `scheduler.max_queue_wait_s`, or when
`scheduler.max_num_waiting` requests already wait. Everything here is model seconds, so the
simulator predicts the same 429s as the live scheduler.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from supernode.config import SchedulerConfig
from supernode.engine.registry import WorkerInfo
from supernode.lifecycle.errors import Overloaded
from supernode.perf import Deployment, PrefillBatch, prefill_time

MAX_RETRY_AFTER_S = 600.0
"""Retry-After never says more than this (model seconds)."""
RATE_WINDOW_S = 5.0
"""Decay time of the measured decode finish rate (model seconds)."""
_LENGTH_BUCKET = 256
"""Prompt lengths are priced in buckets of this many tokens (the rate varies slowly)."""


class LoadShedder:
    """The scheduler's view of queued work, and the 429 decision."""

    def __init__(self, limits: SchedulerConfig, prefill: Deployment, token_budget: int) -> None:
        self.limits = limits
        self.prefill = prefill
        self.token_budget = token_budget
        self.num_waiting_decode = 0
        """Requests waiting for decode KV room (admission retries)."""
        self._queued_tokens: dict[str, int] = {}
        self._num_queued = 0
        self._finish_rate = 0.0
        self._rate_at = 0.0

    # ---- bookkeeping, called by the lifecycle
    def on_prefill_sent(self, worker_id: str, num_tokens: int) -> None:
        self._queued_tokens[worker_id] = self._queued_tokens.get(worker_id, 0) + num_tokens
        self._num_queued += 1

    def on_prefill_ended(self, worker_id: str, num_tokens: int) -> None:
        self._queued_tokens[worker_id] = self._queued_tokens.get(worker_id, 0) - num_tokens
        self._num_queued -= 1

    def on_decode_finished(self, now: float) -> None:
        self._finish_rate = self.decode_finish_rate(now) + 1.0 / RATE_WINDOW_S
        self._rate_at = now

    def decode_finish_rate(self, now: float) -> float:
        """Decode requests finishing per model second, recently."""
        return self._finish_rate * math.exp(-max(0.0, now - self._rate_at) / RATE_WINDOW_S)

    @property
    def num_waiting(self) -> int:
        """Requests waiting for decode room or sent to prefill and not yet prefilled."""
        return self.num_waiting_decode + self._num_queued

    # ---- the decision
    def check(self, num_prompt_tokens: int, prefill_workers: Sequence[WorkerInfo],
              now: float) -> None:
        """Raise Overloaded when a new request of this length would wait too long."""
        limits = self.limits
        if limits.max_num_waiting and self.num_waiting >= limits.max_num_waiting:
            raise Overloaded(f"{self.num_waiting} requests are already waiting "
                             f"(scheduler.max_num_waiting={limits.max_num_waiting})",
                             min(MAX_RETRY_AFTER_S, max(
                                 self.predicted_wait_s(num_prompt_tokens, prefill_workers, now),
                                 limits.max_queue_wait_s)))
        if not limits.max_queue_wait_s:
            return
        wait_s = self.predicted_wait_s(num_prompt_tokens, prefill_workers, now)
        if wait_s > limits.max_queue_wait_s:
            raise Overloaded(f"predicted queueing delay {wait_s:.2f} s exceeds "
                             f"scheduler.max_queue_wait_s={limits.max_queue_wait_s:g} s",
                             min(MAX_RETRY_AFTER_S, wait_s - limits.max_queue_wait_s))

    def predicted_wait_s(self, num_prompt_tokens: int, prefill_workers: Sequence[WorkerInfo],
                         now: float) -> float:
        """Model seconds a new request would wait before its prefill starts."""
        decode_s = 0.0
        rate = self.decode_finish_rate(now)
        if self.num_waiting_decode and rate > 0:
            decode_s = self.num_waiting_decode / rate
        queued = min((self._queued_tokens.get(w.worker_id, 0) for w in prefill_workers),
                     default=0)
        prefill_s = queued / self.prefill_rate(num_prompt_tokens) if queued > 0 else 0.0
        return decode_s + prefill_s

    def prefill_rate(self, num_prompt_tokens: int) -> float:
        """Prompt tokens per model second one instance prefills, for prompts of this length."""
        bucket = min(self.prefill.model.max_context_len,
                     _LENGTH_BUCKET * max(1, round(num_prompt_tokens / _LENGTH_BUCKET)))
        return _rate(self.prefill, self.token_budget, bucket)


@functools.lru_cache(maxsize=512)
def _rate(prefill: Deployment, token_budget: int, prompt_len: int) -> float:
    num_prompts = max(1, token_budget // prompt_len)
    timing = prefill_time(PrefillBatch((prompt_len,) * num_prompts), prefill)
    return num_prompts * prompt_len / timing.total_s
