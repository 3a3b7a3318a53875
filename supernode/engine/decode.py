"""Continuous batching of one decode instance.

A request's stages on a decode instance:
  admitted (KV reserved, transfer pending) -> ready (KV arrived and verified)
  -> running (one or more tokens per step, MTP) -> finished (KV freed) | aborted (KV freed)

KV is reserved at admission for the prompt plus every token the request may still generate,
so a running request never has to be preempted; admission fails when the reservation does not
fit. The running batch is capped at `max_num_seqs` (per-die cap x dies).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from supernode.tokenizer import sample_token


class FinishReason(str, Enum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


@dataclass
class DecodeRequest:
    """One request on a decode instance. `num_generated` counts the prefill's first token."""

    request_id: str
    num_prompt_tokens: int
    max_tokens: int
    num_generated: int
    seed: int
    ignore_eos: bool = False
    eos_token_id: int | None = None
    """The tokenizer's EOS id; None: the engine's default."""
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:{self.num_generated}")

    @property
    def kv_len(self) -> int:
        return self.num_prompt_tokens + self.num_generated

    @property
    def num_reserved_tokens(self) -> int:
        return self.num_prompt_tokens + self.max_tokens


@dataclass(frozen=True)
class TokenOutput:
    """Tokens one step produced for one request; `finish_reason` set when it ended."""

    request_id: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason | None


@dataclass(frozen=True)
class DecodeParams:
    """Sampling behaviour of the synthetic model."""

    mtp_tokens: int
    mtp_acceptance: float
    eos_probability: float
    vocab_size: int
    eos_token_id: int


class DecodeEngine:
    """Admission, KV accounting and per-step token generation for one instance."""

    def __init__(self, max_num_seqs: int, kv_capacity_tokens: int, params: DecodeParams) -> None:
        if max_num_seqs < 1 or kv_capacity_tokens < 1:
            raise ValueError("max_num_seqs and kv_capacity_tokens must be >= 1")
        self.max_num_seqs = max_num_seqs
        self.kv_capacity_tokens = kv_capacity_tokens
        self.params = params
        self.pending: dict[str, DecodeRequest] = {}
        self.ready: deque[DecodeRequest] = deque()
        self.running: dict[str, DecodeRequest] = {}
        self.kv_reserved_tokens = 0

    # ---- admission and KV
    def can_admit(self, num_prompt_tokens: int, max_tokens: int) -> bool:
        need = num_prompt_tokens + max_tokens
        return self.kv_reserved_tokens + need <= self.kv_capacity_tokens

    def admit(self, request: DecodeRequest) -> None:
        """Reserve KV and wait for the transfer. Raises ValueError when it does not fit."""
        if request.request_id in self:
            raise ValueError(f"request {request.request_id} already admitted")
        if not self.can_admit(request.num_prompt_tokens, request.max_tokens):
            raise ValueError("kv cache full")
        self.kv_reserved_tokens += request.num_reserved_tokens
        self.pending[request.request_id] = request

    def on_kv_arrived(self, request_id: str) -> bool:
        """Move a pending request to the ready queue; False if it is unknown (aborted)."""
        request = self.pending.pop(request_id, None)
        if request is None:
            return False
        self.ready.append(request)
        return True

    def abort(self, request_id: str) -> bool:
        """Drop a request wherever it is and free its KV."""
        request = self.pending.pop(request_id, None) or self.running.pop(request_id, None)
        if request is None:
            for r in self.ready:
                if r.request_id == request_id:
                    request = r
                    self.ready.remove(r)
                    break
        if request is None:
            return False
        self.kv_reserved_tokens -= request.num_reserved_tokens
        return True

    def __contains__(self, request_id: str) -> bool:
        return (request_id in self.pending or request_id in self.running
                or any(r.request_id == request_id for r in self.ready))

    # ---- stepping
    def schedule(self) -> list[DecodeRequest]:
        """Fill the running batch from the ready queue; return the batch of this step."""
        while self.ready and len(self.running) < self.max_num_seqs:
            request = self.ready.popleft()
            self.running[request.request_id] = request
        return list(self.running.values())

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.pending) + len(self.ready)

    def mean_kv_len(self) -> float:
        if not self.running:
            return 0.0
        return sum(r.kv_len for r in self.running.values()) / len(self.running)

    def kv_used_tokens(self) -> int:
        """KV tokens actually held (prompt + generated) by admitted requests."""
        held = [*self.pending.values(), *self.ready, *self.running.values()]
        return sum(r.kv_len for r in held)

    def complete_step(self) -> list[TokenOutput]:
        """Advance every running request by one step; finished ones leave and free KV."""
        outputs = []
        for request in list(self.running.values()):
            tokens, reason = self._advance(request)
            outputs.append(TokenOutput(request.request_id, tokens, reason))
            if reason is not None:
                del self.running[request.request_id]
                self.kv_reserved_tokens -= request.num_reserved_tokens
        return outputs

    def _advance(self, request: DecodeRequest) -> tuple[tuple[int, ...], FinishReason | None]:
        p = self.params
        rng = request.rng
        num_tokens = 1 + sum(rng.random() < p.mtp_acceptance for _ in range(p.mtp_tokens))
        tokens: list[int] = []
        for _ in range(num_tokens):
            if not request.ignore_eos and rng.random() < p.eos_probability:
                eos = p.eos_token_id if request.eos_token_id is None else request.eos_token_id
                tokens.append(eos)
                request.num_generated += 1
                return tuple(tokens), FinishReason.STOP
            tokens.append(sample_token(rng, p.vocab_size))
            request.num_generated += 1
            if request.num_generated >= request.max_tokens:
                return tuple(tokens), FinishReason.LENGTH
        return tuple(tokens), None
