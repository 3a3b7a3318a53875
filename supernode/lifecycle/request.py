"""The global scheduler's record of one request, the same in the live scheduler and the simulator.

Times are model seconds on the driver's clock (the live scheduler's `WallClock`, the
simulator's virtual time). The record is complete enough to resume the request elsewhere after
a worker is lost; `details()` is the response's `supernode` object, built only here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from supernode.engine.registry import WorkerKind


class RequestStatus(str, Enum):
    QUEUED = "queued"
    PREFILLING = "prefilling"
    DECODING = "decoding"
    FINISHED = "finished"
    ABORTED = "aborted"
    FAILED = "failed"


class TokenSampler(Protocol):
    """Turns the token counts the workers report into token ids (the live front end's)."""

    def next_ids(self, num_tokens: int, finish_reason: str | None) -> list[int]:
        """Ids of the next `num_tokens` output tokens; the last is EOS when `finish_reason`
        is "stop"."""
        ...


@dataclass(slots=True, eq=False)
class Choice:
    """One of the `n` sequences a request samples from its prompt (parallel sampling)."""

    index: int
    sampler: TokenSampler | None = None
    output_token_ids: list[int] | None = None
    num_tokens: int = 0
    finish_reason: str | None = None
    decode_s: float = 0.0
    """Model seconds from the KV reaching decode to the choice's last token so far."""
    ended_early: bool = False
    """It ended for the client (a stop string) before decode ended it: later tokens are not
    counted, and decode is told to drop it when the request ends."""


@dataclass(slots=True, eq=False)
class Request:
    """One request from arrival to its end.

    `prompt_token_ids` and `output_token_ids` are kept by the live scheduler (a failover
    prefills prompt + output so far); the simulator leaves them None and counts only.

    With `n` > 1 (parallel sampling) the request samples `n` choices from one prefill: each
    has its own tokens, sampler and end in `choices`; the request's `num_output_tokens` counts
    them all and it finishes with its last choice.
    """

    request_id: str
    num_prompt_tokens: int
    max_tokens: int
    """Output tokens in all, the prefill's first token included."""
    seed: int
    arrived_at: float
    ignore_eos: bool = False
    model: str = ""
    """The served model it asks for ("": the primary); only instances holding it serve it."""
    cache_namespace: str = ""
    prompt_token_ids: list[int] | None = None
    block_keys: tuple[bytes, ...] = ()
    """The prompt's prefix-block keys, when a cache-aware policy routes on them."""
    sampler: TokenSampler | None = None
    deadline_at: float = float("inf")
    """Model time after which a request still waiting for its first token is ended."""
    n: int = 1
    choices: list[Choice] | None = None
    """The `n` choices when `n` > 1 (made at construction when not given); None for one."""

    status: RequestStatus = RequestStatus.QUEUED
    prefill_worker_id: str | None = None
    decode_worker_id: str | None = None
    output_token_ids: list[int] | None = None
    num_output_tokens: int = 0
    num_cached_tokens: int = 0
    queue_s: float = 0.0
    fetch_s: float = 0.0
    compute_s: float = 0.0
    transfer_s: float = 0.0
    """The first prefill's modelled parts (a resumed request keeps them)."""
    first_token_at: float | None = None
    kv_ready_at: float | None = None
    """Model time the KV landed on decode, until the request's first decode step ends."""
    finished_at: float | None = None
    modelled_decode_s: float = 0.0
    """Model seconds from the KV reaching decode to the last token."""
    kv_num_bytes: int = 0
    lag_s: float = 0.0
    """How late the live emulator delivered the first token beyond its modelled time."""
    num_failovers: int = 0
    lost_worker_ids: set[str] = field(default_factory=set)
    stage_at: float = 0.0
    """Model time the current attempt's prefill stage was asked for (its timeline's anchor)."""
    admission_deadline: float = 0.0
    admission_backoff_s: float = 0.0
    waiting_for_decode: bool = False
    """No decode instance had room at the last attempt; it waits in line."""
    admission_epoch: int = 0
    """Counts the request's waits for decode room (a wake-up of an older wait is stale)."""
    model_deadline: float = float("inf")
    """Model time after which a request still waiting for a switch to its model fails."""
    waiting_for_model: WorkerKind | None = None
    """The pool it waits in for an instance to switch to its model."""
    decode_reserved: bool = False
    """The decode instance `decode_worker_id` holds a KV reservation for this request."""
    finished_on_decode: bool = False
    """The decode instance reported the end (it has already freed the KV)."""
    finish_reason: str | None = None
    error: str = ""
    overcommitted: bool = False
    """It ran on a deployment that does not fit in HBM (`allow_overcommit`)."""

    def __post_init__(self) -> None:
        if self.n > 1 and self.choices is None:
            ids = self.prompt_token_ids is not None
            self.choices = [Choice(i, output_token_ids=[] if ids else None)
                            for i in range(self.n)]

    @property
    def num_remaining(self) -> int:
        """Tokens still to come for the choice furthest from its end."""
        if self.choices is None:
            return self.max_tokens - self.num_output_tokens
        return max((self.max_tokens - c.num_tokens for c in self.running_choices()), default=0)

    def running_choices(self) -> list[Choice]:
        """The choices that have not ended (n > 1 only)."""
        return [c for c in self.choices or () if c.finish_reason is None]

    @property
    def num_resume_tokens(self) -> int:
        """Output tokens a new attempt must prefill with the prompt: the request's so far, or
        with n > 1 those of each choice still running (each keeps its own KV)."""
        if self.choices is None:
            return self.num_output_tokens
        return sum(c.num_tokens for c in self.running_choices())

    @property
    def num_kept_tokens(self) -> int:
        """Output tokens a follow-up turn continues from (whose decode KV is worth keeping in
        the prefix cache): the request's, or with n > 1 those of choice 0."""
        return self.num_output_tokens if self.choices is None else self.choices[0].num_tokens

    def kept_output_ids(self) -> list[int]:
        """The ids of those tokens (live only)."""
        return (self.output_token_ids if self.choices is None
                else self.choices[0].output_token_ids)

    def resume_token_ids(self) -> list[int]:
        """What a new attempt prefills (live only): the prompt, then the tokens so far."""
        if self.choices is None:
            return self.prompt_token_ids + self.output_token_ids
        ids = list(self.prompt_token_ids)
        for choice in self.running_choices():
            ids.extend(choice.output_token_ids)
        return ids

    @property
    def modelled_ttft_s(self) -> float:
        """What the prefill side reported: cache fetch + queue + compute + KV transfer."""
        return self.fetch_s + self.queue_s + self.compute_s + self.transfer_s

    def modelled_tpot_s(self) -> float | None:
        """Modelled seconds per output token after the first (with n > 1, over the choices)."""
        if self.choices is not None:
            per_choice = [c.decode_s / (c.num_tokens - 1) for c in self.choices
                          if c.num_tokens > 1]
            return sum(per_choice) / len(per_choice) if per_choice else None
        n = self.num_output_tokens
        return self.modelled_decode_s / (n - 1) if n > 1 else None

    def details(self) -> dict:
        """supernode's extension object: where the request ran and what the model said."""
        return {"prefill_worker": self.prefill_worker_id, "decode_worker": self.decode_worker_id,
                "modelled_ttft_s": self.modelled_ttft_s,
                "modelled_tpot_s": self.modelled_tpot_s(), "num_failovers": self.num_failovers,
                "kv_transfer_bytes": self.kv_num_bytes, "lag_s": self.lag_s,
                "overcommitted": self.overcommitted}
