"""The scheduler's record of one request: complete enough to resume it elsewhere.

Lifecycle (the scheduler's module docstring tells the whole path):
QUEUED -> PREFILLING -> DECODING -> FINISHED | ABORTED | FAILED, with FAILED_OVER loops back
to PREFILLING on another pair of instances when a worker is lost mid-request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from supernode.text.sampler import Sampler


class RequestStatus(str, Enum):
    QUEUED = "queued"
    PREFILLING = "prefilling"
    DECODING = "decoding"
    FINISHED = "finished"
    ABORTED = "aborted"
    FAILED = "failed"


@dataclass
class RequestRecord:
    request_id: str
    prompt_token_ids: list[int]
    max_tokens: int
    seed: int
    ignore_eos: bool
    cache_namespace: str
    arrived_at: float
    """Scheduler monotonic wall seconds."""
    eos_token_id: int = 2
    status: RequestStatus = RequestStatus.QUEUED
    prefill_worker_id: str | None = None
    decode_worker_id: str | None = None
    output_token_ids: list[int] = field(default_factory=list)
    num_cached_tokens: int = 0
    finish_reason: str | None = None
    first_token_at: float | None = None
    num_failovers: int = 0
    lost_worker_ids: set[str] = field(default_factory=set)
    """Workers this request was on when they were lost: routed around on the next attempt."""
    modelled_ttft_s: float = 0.0
    """Model seconds the prefill side reported (queue + cache fetch + compute + transfer)."""
    modelled_decode_s: float = 0.0
    """Model seconds from the KV reaching decode to the last token: the wait for a step
    boundary plus the steps that produced the tokens after the first."""
    kv_num_bytes: int = 0
    decode_reserved: bool = False
    """The decode instance `decode_worker_id` holds a KV reservation for this request."""
    finished_on_decode: bool = False
    """The decode instance reported the finish (it has already freed the KV)."""
    sampler: Sampler | None = None
    """Chooses the ids (and text) of the tokens workers report only by count; the request
    path takes every output id from `sampler.next_ids` (see supernode.text.sampler)."""

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_remaining(self) -> int:
        return self.max_tokens - len(self.output_token_ids)

    def modelled_tpot_s(self) -> float | None:
        n = len(self.output_token_ids)
        return self.modelled_decode_s / (n - 1) if n > 1 else None
