"""One simulated request: what the cluster did to it, in model seconds.

Stages (services/scheduler/flow.py tells the live path): released -> decode admission (KV
reserved; none fits: retry with back-off until the admission wait ends) -> prefix fetch ->
prefill queue -> prefill batch -> KV transfer (RDMA; the first token reaches the client with it)
-> decode steps (one chunk per step, MTP may put several tokens in it) -> finished | failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from loadgen.types import RequestResult, SampleRequest


@dataclass
class SimRequest:
    """Mutable record of one request; times are model seconds from the start of the run."""

    index: int
    request_id: str
    sample: SampleRequest
    prompt_token_ids: list[int]
    block_keys: tuple[bytes, ...]
    seed: int
    sent_at: float = 0.0
    admission_deadline: float = 0.0
    admission_backoff_s: float = 0.0
    prefill_id: str = ""
    decode_id: str = ""
    num_cached_tokens: int = 0
    fetch_s: float = 0.0
    enqueued_at: float = 0.0
    queue_s: float = 0.0
    compute_s: float = 0.0
    transfer_s: float = 0.0
    chunk_times: list[float] = field(default_factory=list)
    num_output_tokens: int = 0
    modelled_decode_s: float = 0.0
    kv_arrived_at: float | None = None
    """Set while the request's KV waits on decode for its first step."""
    finish_reason: str | None = None
    error: str = ""

    @property
    def max_tokens(self) -> int:
        return self.sample.expected_output_len

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def modelled_ttft_s(self) -> float:
        """What the live prefill reports: cache fetch + queue + compute + KV transfer."""
        return self.fetch_s + self.queue_s + self.compute_s + self.transfer_s

    def server_details(self) -> dict:
        """The live scheduler's `supernode` object for this request."""
        n = self.num_output_tokens
        return {"prefill_worker": self.prefill_id, "decode_worker": self.decode_id or None,
                "modelled_ttft_s": self.modelled_ttft_s,
                "modelled_tpot_s": self.modelled_decode_s / (n - 1) if n > 1 else None,
                "num_failovers": 0}

    def to_result(self) -> RequestResult:
        """The client's view, in model seconds (what `supernode bench --speedup S` reports
        against a live cluster at speedup S)."""
        times = self.chunk_times
        end = times[-1] if times else self.sent_at
        return RequestResult(
            success=self.finish_reason is not None and not self.error,
            prompt_len=self.num_prompt_tokens,
            expected_output_len=self.max_tokens,
            output_tokens=self.num_output_tokens,
            ttft_s=times[0] - self.sent_at if times else None,
            latency_s=end - self.sent_at,
            started_at_s=self.sent_at,
            itls_s=tuple(b - a for a, b in pairwise(times)),
            error=self.error,
            usage_reported=True,
            server_details=self.server_details(),
        )
