"""Serving-level figures derived from a ``Timing``: TPOT and tokens/s per device.

Convention (calibration notes s4): tokens/s per device = requests per device / TPOT, and
TPOT = iteration time / expected tokens per step (``Deployment.tokens_per_request_step``:
``1 + a + ... + a^k`` for k speculative tokens accepted as a chain with probability a).
"""

from __future__ import annotations

from dataclasses import dataclass

from supernode.perf.decode import decode_step_time
from supernode.perf.deployment import Deployment
from supernode.perf.prefill import prefill_time
from supernode.perf.timing import DecodeBatch, PrefillBatch, Timing


@dataclass(frozen=True)
class DecodeEstimate:
    """One decode iteration at ``batch_per_device`` requests per device."""

    step_s: float
    tpot_s: float
    tokens_per_s_per_device: float
    timing: Timing


@dataclass(frozen=True)
class PrefillEstimate:
    """One packed prefill batch; throughput counts prompt tokens (cached ones included)."""

    batch_s: float
    tokens_per_s_per_device: float
    computed_tokens_per_s_per_device: float
    timing: Timing


def estimate_decode(d: Deployment, batch_per_device: float, kv_len: float) -> DecodeEstimate:
    """Decode figures for ``batch_per_device`` running requests per device at context ``kv_len``."""
    num_requests = round(batch_per_device * d.num_devices)
    if num_requests < 1:
        raise ValueError(f"batch_per_device={batch_per_device} gives no request on "
                         f"{d.num_devices} devices")
    timing = decode_step_time(DecodeBatch(num_requests, kv_len), d)
    tpot = timing.total_s / d.tokens_per_request_step
    return DecodeEstimate(timing.total_s, tpot, num_requests / d.num_devices / tpot, timing)


def estimate_prefill(d: Deployment, prompt_len: int, tokens_per_device: int,
                     cached_prefix_len: int = 0, cache_source: str = "ems_ub") -> PrefillEstimate:
    """Prefill figures for a batch of ``tokens_per_device * num_devices`` prompt tokens
    packed as prompts of ``prompt_len`` (at least one prompt), each with ``cached_prefix_len``
    tokens read from ``cache_source`` (the fetch is part of the batch time)."""
    if tokens_per_device < 1 or prompt_len < 1:
        raise ValueError("prompt_len and tokens_per_device must be >= 1")
    num_prompts = max(1, tokens_per_device * d.num_devices // prompt_len)
    batch = PrefillBatch((prompt_len,) * num_prompts, (cached_prefix_len,) * num_prompts,
                         cache_source)
    timing = prefill_time(batch, d)
    prompt_tokens = prompt_len * num_prompts
    per_device = d.num_devices * timing.total_s
    return PrefillEstimate(timing.total_s, prompt_tokens / per_device,
                           batch.num_computed_tokens / per_device, timing)
