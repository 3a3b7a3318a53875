"""Plain data passed between the load generator's stages.

A run's lifecycle: a workload builds `SampleRequest`s -> arrivals give each a send offset ->
the client sends it and returns a `RequestResult` -> metrics reduce the results -> reports.
Times inside a `RequestResult` are seconds, measured by the client on a monotonic clock and
handed on by the runner in model seconds (wall x the server's `speedup`, see
`EndpointConfig`); `started_at_s` is relative to the start of the run so results from one run
share a time axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SampleRequest:
    """One request a workload asks for.

    `prompt` is a tuple of token ids (exact length, sent as `prompt: [int, ...]` on
    /v1/completions) or a text string. `prompt_len` is exact for token ids and an estimate for
    text; the server's `usage.prompt_tokens` replaces it when the server reports usage.
    `arrival_offset_s` is set only by trace replay: the send time relative to the first request.
    """

    prompt: tuple[int, ...] | str
    prompt_len: int
    expected_output_len: int
    arrival_offset_s: float | None = None

    def __post_init__(self) -> None:
        if self.prompt_len < 0 or self.expected_output_len < 1:
            raise ValueError(
                f"bad lengths: prompt_len={self.prompt_len}, "
                f"expected_output_len={self.expected_output_len}"
            )


@dataclass(frozen=True)
class RequestResult:
    """What the client observed for one request.

    A request succeeds when the server answered 200, streamed at least one token and ended the
    stream with a finish_reason or `[DONE]`. Otherwise `success` is False and `error` keeps the
    server's or the transport's message; the timing fields then describe what was seen before
    the failure (`ttft_s` is None when no token arrived).
    `output_tokens` is `usage.completion_tokens` when the server reported it, else the number
    of streamed chunks that carried text. `itls_s` are the gaps between those chunks.
    `server_details` keeps a non-standard per-request object the server sent beside `usage`
    (supernode's `supernode` object with `modelled_ttft_s`, `modelled_tpot_s`, ...), else {}.
    `cached_tokens` is `usage.prompt_tokens_details.cached_tokens` (prompt tokens served from
    the server's prefix cache), None when the server does not report it.
    """

    success: bool
    prompt_len: int
    expected_output_len: int
    output_tokens: int
    ttft_s: float | None
    latency_s: float
    started_at_s: float
    itls_s: tuple[float, ...] = ()
    error: str = ""
    generated_text: str = ""
    usage_reported: bool = False
    server_details: dict = field(default_factory=dict)
    cached_tokens: int | None = None

    @property
    def tpot_s(self) -> float | None:
        """(latency - TTFT) / (output_tokens - 1), vLLM's TPOT; None below two tokens."""
        if not self.success or self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.latency_s - self.ttft_s) / (self.output_tokens - 1)
