"""Admission control: refuse at once (HTTP 429, Retry-After) a request that would miss its TTFT.

A new request's predicted TTFT is the modelled time of the work ahead of it plus its own, not a
count:
- decode room: when requests already wait in line for decode KV room, they go first, and room
  frees at the rate decode requests finish (measured, decayed over `RATE_WINDOW_S` model
  seconds; before any has finished the rate is unknown and this term is left out);
- prefill: the prompt tokens this scheduler has sent to the least-loaded prefill instance and not
  yet seen finish, plus the request's own, over that instance's modelled prefill rate for
  prompts of this length (`supernode.perf.prefill_time` of a full token budget). Batches are
  packed FCFS when the instance frees, so the request's own batch also carries what arrives
  while the work ahead drains: the recent admission rate times that drain time (up to the
  batch's token budget);
- its KV hand-off to decode (`supernode.perf.kv_handoff_times`).
A request is shed when that exceeds `scheduler.ttft_slo_s`, or when `scheduler.max_num_waiting`
requests already wait (for decode room, for a model switch, or in a prefill queue). A request
for a model no instance holds is not shed for the switch it waits for: that wait is bounded by
`scheduler.model_wait_s`. Everything is model seconds, so the simulator predicts the same 429s as
the live scheduler.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from supernode.config import SchedulerConfig
from supernode.engine.registry import WorkerInfo
from supernode.lifecycle.errors import Overloaded
from supernode.perf import Deployment, PrefillBatch, kv_handoff_times, prefill_time

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
        """Requests waiting in line for decode KV room."""
        self.num_waiting_model = 0
        """Requests waiting for an instance to switch to their model."""
        self._queued_tokens: dict[str, int] = {}
        self._num_queued = 0
        self._finish_rate = 0.0
        self._rate_at = 0.0
        self._token_rate = 0.0
        self._token_rate_at = 0.0

    # ---- bookkeeping, called by the lifecycle
    def on_prefill_sent(self, worker_id: str, num_tokens: int, now: float) -> None:
        self._queued_tokens[worker_id] = self._queued_tokens.get(worker_id, 0) + num_tokens
        self._num_queued += 1
        self._token_rate = self.prefill_token_rate(now) + num_tokens / RATE_WINDOW_S
        self._token_rate_at = now

    def prefill_token_rate(self, now: float) -> float:
        """Prompt tokens sent to prefill per model second, recently (all instances)."""
        return self._token_rate * math.exp(-max(0.0, now - self._token_rate_at)
                                           / RATE_WINDOW_S)

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
        """Requests waiting for decode room or a model switch, or sent to prefill and not yet
        prefilled."""
        return self.num_waiting_decode + self.num_waiting_model + self._num_queued

    # ---- the decision
    def check(self, num_prompt_tokens: int, prefill_workers: Sequence[WorkerInfo],
              now: float) -> None:
        """Raise Overloaded when a new request of this length would miss the TTFT bound."""
        limits = self.limits
        ttft_s = self.predicted_ttft_s(num_prompt_tokens, prefill_workers, now)
        if limits.max_num_waiting and self.num_waiting >= limits.max_num_waiting:
            raise Overloaded(f"{self.num_waiting} requests are already waiting "
                             f"(scheduler.max_num_waiting={limits.max_num_waiting})",
                             _retry_after(ttft_s - (limits.ttft_slo_s or 0.0)))
        if limits.ttft_slo_s and ttft_s > limits.ttft_slo_s:
            raise Overloaded(f"predicted time to first token {ttft_s:.2f} s exceeds "
                             f"scheduler.ttft_slo_s={limits.ttft_slo_s:g} s",
                             _retry_after(ttft_s - limits.ttft_slo_s))

    def predicted_ttft_s(self, num_prompt_tokens: int, prefill_workers: Sequence[WorkerInfo],
                         now: float) -> float:
        """Model seconds a new request would take to its first token."""
        decode_s = 0.0
        rate = self.decode_finish_rate(now)
        if self.num_waiting_decode and rate > 0:
            decode_s = self.num_waiting_decode / rate
        queued = min((self._queued_tokens.get(w.worker_id, 0) for w in prefill_workers),
                     default=0)
        bucket = min(self.prefill.model.max_context_len,
                     _LENGTH_BUCKET * max(1, round(num_prompt_tokens / _LENGTH_BUCKET)))
        rate_tokens, handoff_s = _prefill_rate(self.prefill, self.token_budget, bucket)
        ahead_s = queued / rate_tokens
        per_instance = self.prefill_token_rate(now) / max(1, len(prefill_workers))
        joining = min(max(0, self.token_budget - num_prompt_tokens), per_instance * ahead_s)
        return decode_s + ahead_s + (num_prompt_tokens + joining) / rate_tokens + handoff_s


def _retry_after(excess_s: float) -> float:
    return min(MAX_RETRY_AFTER_S, max(0.0, excess_s))


@functools.lru_cache(maxsize=512)
def _prefill_rate(prefill: Deployment, token_budget: int, prompt_len: int
                  ) -> tuple[float, float]:
    """(prompt tokens per model second one instance prefills, for prompts of this length;
    the KV hand-off time of one such prompt)."""
    num_prompts = max(1, token_budget // prompt_len)
    timing = prefill_time(PrefillBatch((prompt_len,) * num_prompts), prefill)
    kv_bytes = prompt_len * prefill.model.kv_bytes_per_token(prefill.kv_dtype)
    (handoff,) = kv_handoff_times([kv_bytes], prefill)
    return num_prompts * prompt_len / timing.total_s, handoff.total_s
