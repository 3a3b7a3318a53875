"""Continuous batching of one decode instance, at a cost per step that does not grow with the batch.

A request's stages on a decode instance:
  admitted (KV reserved, transfer pending) -> ready (KV arrived and verified)
  -> running (one or more tokens per step, MTP) -> finished (KV freed) | aborted (KV freed)

KV is reserved at admission for the prompt plus every token the request may still generate,
so a running request never has to be preempted; admission fails when the reservation does not
fit. The running batch is capped at `max_num_seqs` (per-die cap x dies).

Parallel sampling (OpenAI's `n`): one request may carry several choices, sequences that share
the prompt's KV (one prefill, one transfer). As vLLM reserves it, the request holds the prompt
once plus `max_tokens` per choice; each choice takes a batch slot, reads the whole prompt in
attention and ends on its own; the request joins the batch whole and frees the prompt with its
last choice.

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
    """Output tokens in all, per choice."""
    num_generated: int
    seed: int
    ignore_eos: bool = False
    choices: tuple[tuple[int, int], ...] = ()
    """Parallel sampling: (choice index, tokens it has generated) of each choice still to run,
    sharing the prompt's KV. Empty: one choice, index 0, `num_generated` tokens."""

    def sequences(self) -> tuple[tuple[int, int], ...]:
        """(choice index, tokens generated) of each sequence the request runs."""
        return self.choices or ((0, self.num_generated),)

    @property
    def num_sequences(self) -> int:
        return len(self.choices) or 1

    @property
    def kv_len(self) -> int:
        """KV held: the prompt once, plus each choice's own tokens."""
        if not self.choices:
            return self.num_prompt_tokens + self.num_generated
        return self.num_prompt_tokens + sum(g for _, g in self.choices)

    @property
    def num_reserved_tokens(self) -> int:
        return self.num_prompt_tokens + self.num_sequences * self.max_tokens


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


def choice_seed(seed: int, index: int) -> int:
    """The seed of choice `index` of a request seeded `seed` (choice 0 keeps it)."""
    return (seed + index * 0x9E37_79B9_7F4A_7C15) & 0xFFFF_FFFF_FFFF_FFFF


def draw_plan(request: DecodeRequest, params: DecodeParams, index: int = 0,
              num_generated: int | None = None) -> Plan:
    """The remaining tokens of the request's choice `index` (which has generated
    `num_generated`, default the request's), step by step, drawn from its seed.

    Each step emits 1 + S tokens, S = accepted speculative tokens = the leading successes of
    `mtp_tokens` Bernoulli(`mtp_acceptance`) trials, so E[tokens/step] = 1 + a + ... + a^k.
    Each token is EOS with `eos_probability` (unless `ignore_eos`); the EOS token is emitted
    and ends the request with STOP, else it ends with LENGTH after `max_tokens` in all.
    """
    generated = request.num_generated if num_generated is None else num_generated
    remaining = request.max_tokens - generated
    if remaining < 1:
        raise ValueError(f"request {request.request_id} has nothing left to generate")
    rng = np.random.Generator(np.random.PCG64(choice_seed(request.seed, index)))
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
    """Tokens one step produced for one choice of a request; `finish_reason` set when it
    ended."""

    request_id: str
    num_tokens: int
    finish_reason: FinishReason | None
    index: int = 0


@dataclass(frozen=True, slots=True)
class Finished:
    """A choice of a request that ended at the step just completed."""

    request_id: str
    num_generated: int
    """The choice's output tokens in all, the prefill's first token included."""
    finish_reason: FinishReason
    index: int = 0
    last: bool = True
    """No choice of the request runs any more: its KV is free."""


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What one completed step did to the batch: tokens emitted, requests that ended."""

    num_requests: int
    num_tokens: int
    finished: tuple[Finished, ...]


@dataclass(slots=True)
class _Running:
    """One running sequence: a request's choice."""

    request: DecodeRequest
    join_step: int
    plan: Plan
    index: int = 0
    num_generated: int = 0
    """Tokens the choice had generated when it joined."""

    @property
    def key(self) -> tuple[str, int]:
        return self.request.request_id, self.index


@dataclass(slots=True)
class _Group:
    """A running request and how many of its sequences still run."""

    request: DecodeRequest
    num_left: int


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
        self.running: dict[tuple[str, int], _Running] = {}
        """Running sequences by (request id, choice index)."""
        self.kv_reserved_tokens = 0
        self.num_steps = 0
        """Steps completed so far: the index of the next step."""
        self._groups: dict[str, _Group] = {}  # running requests: their sequences still running
        self._kv_running = 0  # sum of the sequences' context lengths, at the step boundary
        self._kv_shared = 0  # prompt tokens counted more than once in it (parallel sampling)
        self._kv_waiting = 0  # KV held by pending + ready requests
        self._added = StepRing()  # step -> tokens the batch adds at its end
        self._ending: dict[int, list[tuple[str, int]]] = {}  # step -> sequences ending with it

    # ---- admission and KV
    def can_admit(self, num_prompt_tokens: int, max_tokens: int, num_sequences: int = 1) -> bool:
        need = num_prompt_tokens + num_sequences * max_tokens
        return self.kv_reserved_tokens + need <= self.kv_capacity_tokens

    def admit(self, request: DecodeRequest) -> None:
        """Reserve KV and wait for the transfer. Raises ValueError when it does not fit."""
        if request.request_id in self:
            raise ValueError(f"request {request.request_id} already admitted")
        if any(request.max_tokens <= g for _, g in request.sequences()):
            raise ValueError("nothing left to generate")
        if len({i for i, _ in request.choices}) != len(request.choices):
            raise ValueError("choice indexes repeat")
        if request.num_sequences > self.max_num_seqs:
            raise ValueError(f"{request.num_sequences} choices exceed the batch cap "
                             f"({self.max_num_seqs} sequences)")
        if not self.can_admit(request.num_prompt_tokens, request.max_tokens,
                              request.num_sequences):
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
        """Drop a request wherever it is (every choice) and free its KV."""
        request = self.pending.pop(request_id, None) or self.ready.pop(request_id, None)
        if request is not None:
            self._kv_waiting -= request.kv_len
        else:
            group = self._groups.pop(request_id, None)
            if group is None:
                return False
            request = group.request
            for index, _ in request.sequences():
                entry = self.running.pop((request_id, index), None)
                if entry is not None:
                    self._forget_future(entry)
            self._kv_shared -= (group.num_left - 1) * request.num_prompt_tokens
            self.kv_reserved_tokens -= (request.num_prompt_tokens
                                        + group.num_left * request.max_tokens)
            return True
        self.kv_reserved_tokens -= request.num_reserved_tokens
        return True

    def __contains__(self, request_id: str) -> bool:
        return (request_id in self.pending or request_id in self.ready
                or request_id in self._groups)

    # ---- stepping
    def schedule(self) -> list[str]:
        """Fill the running batch from the ready queue (FIFO, a request with all its choices);
        return the requests that joined."""
        joined: list[str] = []
        ready = self.ready
        while ready:
            request_id, request = next(iter(ready.items()))
            if len(self.running) + request.num_sequences > self.max_num_seqs:
                break
            del ready[request_id]
            self._join(request)
            joined.append(request_id)
        return joined

    @property
    def num_running(self) -> int:
        """Running sequences (a request with n choices counts n)."""
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.pending) + len(self.ready)

    def mean_kv_len(self) -> float:
        """Mean context length of the running sequences at the current step boundary (each
        choice reads the whole prompt)."""
        return self._kv_running / len(self.running) if self.running else 0.0

    def kv_used_tokens(self) -> int:
        """KV tokens actually held (prompt once + generated) by admitted requests."""
        return self._kv_running - self._kv_shared + self._kv_waiting

    def step_outputs(self) -> list[TokenOutput]:
        """Each running sequence's tokens in the step about to complete (O(batch); live only)."""
        step, outputs = self.num_steps, []
        for (request_id, index), entry in self.running.items():
            i = step - entry.join_step
            cum = entry.plan.cum_tokens
            num = int(cum[i] - (cum[i - 1] if i else 0))
            reason = entry.plan.finish_reason if i == entry.plan.num_steps - 1 else None
            outputs.append(TokenOutput(request_id, num, reason, index))
        return outputs

    def complete_step(self) -> StepOutcome:
        """Advance every running sequence by one step; ended ones leave and free their KV."""
        step = self.num_steps
        num_requests = len(self.running)
        num_tokens = self._added.pop(step)
        self._kv_running += num_tokens
        finished = []
        for key in self._ending.pop(step, ()):
            entry = self.running.pop(key)
            request = entry.request
            num_generated = entry.num_generated + entry.plan.num_tokens
            self._kv_running -= request.num_prompt_tokens + num_generated
            self.kv_reserved_tokens -= request.max_tokens
            group = self._groups[key[0]]
            group.num_left -= 1
            left = group.num_left
            if left:
                self._kv_shared -= request.num_prompt_tokens
            else:
                del self._groups[key[0]]
                self.kv_reserved_tokens -= request.num_prompt_tokens
            finished.append(Finished(key[0], num_generated, entry.plan.finish_reason,
                                     key[1], not left))
        self.num_steps = step + 1
        return StepOutcome(num_requests, num_tokens, tuple(finished))

    def _join(self, request: DecodeRequest) -> None:
        step = self.num_steps
        sequences = request.sequences()
        self._kv_waiting -= request.kv_len
        self._groups[request.request_id] = _Group(request, len(sequences))
        self._kv_shared += (len(sequences) - 1) * request.num_prompt_tokens
        for index, generated in sequences:
            plan = draw_plan(request, self.params, index, generated)
            entry = _Running(request, step, plan, index, generated)
            self.running[request.request_id, index] = entry
            self._kv_running += request.num_prompt_tokens + generated
            self._added.add(step, plan.counts)
            self._ending.setdefault(step + plan.num_steps - 1, []).append(entry.key)

    def _forget_future(self, entry: _Running) -> None:
        """Take an aborted running sequence's remaining steps out of the aggregates."""
        step, plan = self.num_steps, entry.plan
        done = step - entry.join_step  # steps it has completed
        cum = plan.cum_tokens
        emitted = int(cum[done - 1]) if done else 0
        self._kv_running -= entry.request.num_prompt_tokens + entry.num_generated + emitted
        self._added.add(step, -plan.counts[done:])
        self._ending[entry.join_step + plan.num_steps - 1].remove(entry.key)


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
