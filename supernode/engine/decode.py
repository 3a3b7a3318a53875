"""Continuous batching of one decode instance, at a cost per step that does not grow with the batch.

A request's stages on a decode instance:
  admitted (KV reserved, transfer pending) -> ready (KV arrived and verified)
  -> running (one or more tokens per step, MTP) -> finished (KV freed) | aborted (KV freed)

KV is reserved at admission for the prompt plus every token the request may still generate,
so a running request never has to be preempted; admission fails when the reservation does not
fit. The running batch is capped at `max_num_seqs` (per-die cap x dies).

When a request joins the running batch its whole future is drawn at once from its seed (a
`Plan`): how many tokens each of its steps emits (the base token plus the MTP tokens accepted
as a chain: token i only if tokens 1..i-1 were) and where it ends (EOS or `max_tokens`). The
engine then keeps per-step aggregates (tokens the batch adds to its KV at each future step,
requests ending at each step), so `complete_step` costs O(1 + requests ending) whatever the
batch size. The offline simulator relies on that; the live worker also asks for each running
request's tokens of the step (`step_outputs`, O(batch)) to stream them.

Token *ids* are not chosen here: the scheduler turns counts into text (see supernode.text).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

import numpy as np


class FinishReason(str, Enum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


@dataclass(frozen=True)
class DecodeParams:
    """Sampling behaviour of the synthetic model."""

    mtp_tokens: int
    mtp_acceptance: float
    eos_probability: float


@dataclass(slots=True)
class DecodeRequest:
    """One request on a decode instance. `num_generated` counts the prefill's first token."""

    request_id: str
    num_prompt_tokens: int
    max_tokens: int
    num_generated: int
    seed: int
    ignore_eos: bool = False

    @property
    def kv_len(self) -> int:
        return self.num_prompt_tokens + self.num_generated

    @property
    def num_reserved_tokens(self) -> int:
        return self.num_prompt_tokens + self.max_tokens


@dataclass(frozen=True, slots=True)
class Plan:
    """A running request's future: `counts[i]` tokens in its (i+1)-th step, `cum_tokens[i]`
    emitted after it."""

    counts: np.ndarray
    cum_tokens: np.ndarray
    finish_reason: FinishReason

    @property
    def num_steps(self) -> int:
        return len(self.cum_tokens)

    @property
    def num_tokens(self) -> int:
        return int(self.cum_tokens[-1])


def draw_plan(request: DecodeRequest, params: DecodeParams) -> Plan:
    """The request's remaining tokens, step by step, drawn from its seed.

    Each step emits 1 + S tokens, S = accepted speculative tokens = the leading successes of
    `mtp_tokens` Bernoulli(`mtp_acceptance`) trials, so E[tokens/step] = 1 + a + ... + a^k.
    Each token is EOS with `eos_probability` (unless `ignore_eos`); the EOS token is emitted
    and ends the request with STOP, else it ends with LENGTH after `max_tokens` in all.
    """
    remaining = request.max_tokens - request.num_generated
    if remaining < 1:
        raise ValueError(f"request {request.request_id} has nothing left to generate")
    rng = np.random.Generator(np.random.PCG64(request.seed & 0xFFFF_FFFF_FFFF_FFFF))
    total, reason = remaining, FinishReason.LENGTH
    if not request.ignore_eos and params.eos_probability > 0:
        eos_at = int(rng.geometric(params.eos_probability))
        if eos_at <= remaining:
            total, reason = eos_at, FinishReason.STOP
    k, a = params.mtp_tokens, params.mtp_acceptance
    if k == 0 or a <= 0:
        counts = np.ones(total, dtype=np.int64)
    elif a >= 1:
        counts = np.full(total, 1 + k, dtype=np.int64)
    elif k == 1:
        counts = 1 + (rng.random(total) < a).astype(np.int64)
    else:  # successes before the first failure, capped at k
        counts = 1 + np.minimum(rng.geometric(1 - a, total) - 1, k)
    cum = np.cumsum(counts)
    last = int(np.searchsorted(cum, total))
    counts, cum = counts[:last + 1], cum[:last + 1]
    counts[-1] -= cum[-1] - total
    cum[-1] = total
    return Plan(counts, cum, reason)


@dataclass(frozen=True, slots=True)
class TokenOutput:
    """Tokens one step produced for one request; `finish_reason` set when it ended."""

    request_id: str
    num_tokens: int
    finish_reason: FinishReason | None


@dataclass(frozen=True, slots=True)
class Finished:
    """A request that ended at the step just completed."""

    request_id: str
    num_generated: int
    """Output tokens in all, the prefill's first token included."""
    finish_reason: FinishReason


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What one completed step did to the batch: tokens emitted, requests that ended."""

    num_requests: int
    num_tokens: int
    finished: tuple[Finished, ...]


@dataclass(slots=True)
class _Running:
    request: DecodeRequest
    join_step: int
    plan: Plan


class DecodeEngine:
    """Admission, KV accounting and stepping of one instance."""

    def __init__(self, max_num_seqs: int, kv_capacity_tokens: int, params: DecodeParams) -> None:
        if max_num_seqs < 1 or kv_capacity_tokens < 1:
            raise ValueError("max_num_seqs and kv_capacity_tokens must be >= 1")
        self.max_num_seqs = max_num_seqs
        self.kv_capacity_tokens = kv_capacity_tokens
        self.params = params
        self.pending: dict[str, DecodeRequest] = {}
        self.ready: OrderedDict[str, DecodeRequest] = OrderedDict()
        self.running: dict[str, _Running] = {}
        self.kv_reserved_tokens = 0
        self.num_steps = 0
        """Steps completed so far: the index of the next step."""
        self._kv_running = 0  # sum of kv_len over the running batch, at the step boundary
        self._kv_waiting = 0  # sum of kv_len over pending + ready requests
        self._added = StepRing()  # step -> tokens the batch adds at its end
        self._ending: dict[int, list[str]] = {}  # step -> requests that end with it

    # ---- admission and KV
    def can_admit(self, num_prompt_tokens: int, max_tokens: int) -> bool:
        need = num_prompt_tokens + max_tokens
        return self.kv_reserved_tokens + need <= self.kv_capacity_tokens

    def admit(self, request: DecodeRequest) -> None:
        """Reserve KV and wait for the transfer. Raises ValueError when it does not fit."""
        if request.request_id in self:
            raise ValueError(f"request {request.request_id} already admitted")
        if request.max_tokens <= request.num_generated:
            raise ValueError("nothing left to generate")
        if not self.can_admit(request.num_prompt_tokens, request.max_tokens):
            raise ValueError("kv cache full")
        self.kv_reserved_tokens += request.num_reserved_tokens
        self._kv_waiting += request.kv_len
        self.pending[request.request_id] = request

    def on_kv_arrived(self, request_id: str) -> bool:
        """Move a pending request to the ready queue; False if it is unknown (aborted)."""
        request = self.pending.pop(request_id, None)
        if request is None:
            return False
        self.ready[request_id] = request
        return True

    def abort(self, request_id: str) -> bool:
        """Drop a request wherever it is and free its KV."""
        request = self.pending.pop(request_id, None) or self.ready.pop(request_id, None)
        if request is not None:
            self._kv_waiting -= request.kv_len
        else:
            entry = self.running.pop(request_id, None)
            if entry is None:
                return False
            self._forget_future(entry)
            request = entry.request
        self.kv_reserved_tokens -= request.num_reserved_tokens
        return True

    def __contains__(self, request_id: str) -> bool:
        return request_id in self.pending or request_id in self.ready or request_id in self.running

    # ---- stepping
    def schedule(self) -> list[str]:
        """Fill the running batch from the ready queue (FIFO); return the requests that joined."""
        joined: list[str] = []
        while self.ready and len(self.running) < self.max_num_seqs:
            request_id, request = self.ready.popitem(last=False)
            self._join(request)
            joined.append(request_id)
        return joined

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.pending) + len(self.ready)

    def mean_kv_len(self) -> float:
        """Mean context length of the running batch at the current step boundary."""
        return self._kv_running / len(self.running) if self.running else 0.0

    def kv_used_tokens(self) -> int:
        """KV tokens actually held (prompt + generated) by admitted requests."""
        return self._kv_running + self._kv_waiting

    def step_outputs(self) -> list[TokenOutput]:
        """Each running request's tokens in the step about to complete (O(batch); live only)."""
        step, outputs = self.num_steps, []
        for request_id, entry in self.running.items():
            i = step - entry.join_step
            cum = entry.plan.cum_tokens
            num = int(cum[i] - (cum[i - 1] if i else 0))
            reason = entry.plan.finish_reason if i == entry.plan.num_steps - 1 else None
            outputs.append(TokenOutput(request_id, num, reason))
        return outputs

    def complete_step(self) -> StepOutcome:
        """Advance every running request by one step; ended ones leave and free their KV."""
        step = self.num_steps
        num_requests = len(self.running)
        num_tokens = self._added.pop(step)
        self._kv_running += num_tokens
        finished = []
        for request_id in self._ending.pop(step, ()):
            entry = self.running.pop(request_id)
            request = entry.request
            num_generated = request.num_generated + entry.plan.num_tokens
            self._kv_running -= request.num_prompt_tokens + num_generated
            self.kv_reserved_tokens -= request.num_reserved_tokens
            finished.append(Finished(request_id, num_generated, entry.plan.finish_reason))
        self.num_steps = step + 1
        return StepOutcome(num_requests, num_tokens, tuple(finished))

    def _join(self, request: DecodeRequest) -> None:
        plan = draw_plan(request, self.params)
        step = self.num_steps
        self.running[request.request_id] = _Running(request, step, plan)
        self._kv_waiting -= request.kv_len
        self._kv_running += request.kv_len
        self._added.add(step, plan.counts)
        self._ending.setdefault(step + plan.num_steps - 1, []).append(request.request_id)

    def _forget_future(self, entry: _Running) -> None:
        """Take an aborted running request's remaining steps out of the aggregates."""
        step, plan = self.num_steps, entry.plan
        done = step - entry.join_step  # steps it has completed
        cum = plan.cum_tokens
        emitted = int(cum[done - 1]) if done else 0
        self._kv_running -= entry.request.kv_len + emitted
        self._added.add(step, -plan.counts[done:])
        ending = self._ending[entry.join_step + plan.num_steps - 1]
        ending.remove(entry.request.request_id)


class StepRing:
    """Integer amounts per future step, as a ring buffer: `add` a run of steps, `pop` the next.

    Steps are popped in increasing order; an `add` may reach as far ahead as it needs (the ring
    grows), never behind the last popped step.
    """

    def __init__(self, size: int = 1024) -> None:
        self._values = np.zeros(size, dtype=np.int64)
        self._next = 0  # the step `pop` returns next

    def add(self, first_step: int, amounts: np.ndarray) -> None:
        """Add `amounts[i]` to step `first_step + i`."""
        n = len(amounts)
        if first_step < self._next:
            raise ValueError(f"step {first_step} already popped")
        if first_step + n - self._next > len(self._values):
            self._grow(first_step + n - self._next)
        size = len(self._values)
        start = first_step % size
        head = min(n, size - start)
        self._values[start:start + head] += amounts[:head]
        if head < n:
            self._values[:n - head] += amounts[head:]

    def pop(self, step: int) -> int:
        """The amount of `step` (the next one), cleared."""
        if step != self._next:
            raise ValueError(f"expected step {self._next}, got {step}")
        i = step % len(self._values)
        value = int(self._values[i])
        self._values[i] = 0
        self._next = step + 1
        return value

    def _grow(self, span: int) -> None:
        size = len(self._values)
        new_size = max(2 * size, 1 << (span - 1).bit_length())
        steps = self._next + np.arange(size)  # every step the ring can hold now, in order
        values = np.zeros(new_size, dtype=np.int64)
        values[steps % new_size] = self._values[steps % size]
        self._values = values
