"""Small factories shared by the loadgen tests."""

from __future__ import annotations

from loadgen.config import EndpointConfig, LoadConfig
from loadgen.runner import RunOutcome, run_benchmark
from loadgen.types import RequestResult, SampleRequest


def make_endpoint(base_url: str, script: dict, chat: bool = False) -> EndpointConfig:
    return EndpointConfig(
        base_url=base_url,
        endpoint="/v1/chat/completions" if chat else "/v1/completions",
        model="scripted-model",
        ignore_eos=True,
        extra_body={"script": script},
        request_timeout_s=30.0,
    )


def make_sample(prompt_len: int = 8, output_len: int = 10, first_id: int = 1000) -> SampleRequest:
    prompt = (first_id,) + tuple(1000 + i for i in range(prompt_len - 1))
    return SampleRequest(prompt, prompt_len, output_len)


def make_result(
    ttft_ms: float, tpot_ms: float, output_tokens: int = 11, success: bool = True
) -> RequestResult:
    ttft_s, tpot_s = ttft_ms / 1e3, tpot_ms / 1e3
    gaps = (tpot_s,) * (output_tokens - 1)
    return RequestResult(
        success=success,
        prompt_len=8,
        expected_output_len=output_tokens,
        output_tokens=output_tokens if success else 0,
        ttft_s=ttft_s if success else None,
        latency_s=ttft_s + sum(gaps),
        started_at_s=0.0,
        itls_s=gaps if success else (),
        error="" if success else "HTTP 500: boom",
    )


async def run(
    base_url: str, samples: list[SampleRequest], script: dict, chat: bool = False, **load
) -> RunOutcome:
    return await run_benchmark(samples, make_endpoint(base_url, script, chat), LoadConfig(**load))


async def retry_under_contention(attempt, attempts: int = 3) -> None:
    """Run `attempt()` (an async function that asserts) up to `attempts` times; re-raise the
    last AssertionError. Timing tests use it because CPU contention from neighbours can only
    make a measured latency *longer* than scripted, never shorter: one clean attempt shows the
    measurement is right, while a systematic error fails every attempt."""
    for index in range(attempts):
        try:
            await attempt()
            return
        except AssertionError:
            if index == attempts - 1:
                raise
