"""A context-cache (EMS) reuse experiment: what prefix reuse buys one prefill instance.

As in the paper's experiment (P3 s5.4, Fig. 23): every prompt of a full prefill batch finds
the same share ``reuse`` of its tokens in the cache (whole blocks); throughput counts prompt
tokens (cached ones included) per second per device, and TTFT is the batch's time from the
start of its cache fetch until a request's KV is complete at decode (fetch + compute + the
P->D hand-off, which is what the serving system's modelled TTFT adds up, before queueing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from supernode.perf.comm import kv_handoff_times
from supernode.perf.deployment import Deployment
from supernode.perf.memory import kv_bytes_per_token_per_die
from supernode.perf.prefill import prefill_time
from supernode.perf.timing import CACHE_SOURCES, PrefillBatch

#: The experiment's cache settings: no cache, or one of the sources a batch can read from.
CACHE_SETTINGS = ("none", *CACHE_SOURCES)


@dataclass(frozen=True)
class ReusePoint:
    """One batch of the experiment at prefix reuse ``reuse`` with ``cache`` (a
    ``CACHE_SETTINGS`` entry; with ``"none"`` nothing is cached whatever the reuse)."""

    reuse: float
    cache: str
    cached_prefix_len: int
    batch_s: float
    fetch_s: float
    handoff_s: float
    ttft_s: float
    tokens_per_s_per_device: float


def reuse_point(d: Deployment, prompt_len: int, tokens_per_device: int, reuse: float,
                cache: str = "ems_ub") -> ReusePoint:
    """The batch of ``tokens_per_device * num_devices`` prompt tokens at ``reuse`` with ``cache``."""
    if cache not in CACHE_SETTINGS:
        raise ValueError(f"cache must be one of {CACHE_SETTINGS} (got {cache!r})")
    if not 0 <= reuse < 1:
        raise ValueError(f"reuse must be in [0, 1) (got {reuse})")
    if prompt_len < 1 or tokens_per_device < 1:
        raise ValueError("prompt_len and tokens_per_device must be >= 1")
    block = d.kv_block_tokens
    cached = 0 if cache == "none" else int(reuse * prompt_len) // block * block
    num_prompts = max(1, tokens_per_device * d.num_devices // prompt_len)
    source = "ems_ub" if cache == "none" else cache
    batch = PrefillBatch((prompt_len,) * num_prompts, (cached,) * num_prompts, source)
    timing = prefill_time(batch, d)
    kv_bytes = round(prompt_len * kv_bytes_per_token_per_die(d) * d.kv_shard)
    handoffs = kv_handoff_times((kv_bytes,) * num_prompts, d)
    handoff_s = sum(h.total_s for h in handoffs) / num_prompts
    return ReusePoint(reuse, cache, cached, timing.total_s, timing.breakdown.get("cache_fetch", 0.0),
                      handoff_s, timing.total_s + handoff_s,
                      prompt_len * num_prompts / (d.num_devices * timing.total_s))


def reuse_experiment(d: Deployment, prompt_len: int, tokens_per_device: int,
                     reuse_rates: Iterable[float],
                     caches: Iterable[str] = CACHE_SETTINGS) -> tuple[ReusePoint, ...]:
    """Every ``reuse_point`` of ``reuse_rates`` x ``caches``, rate-major."""
    caches = tuple(caches)
    return tuple(reuse_point(d, prompt_len, tokens_per_device, r, c)
                 for r in reuse_rates for c in caches)
