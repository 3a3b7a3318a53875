"""The plain data the hardware model takes and returns: batches and their ``Timing``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: What limits a part of the work.
BOUNDS = ("compute", "memory", "network", "fixed")
#: Where a prefill batch reads its cached prefixes from: the EMS pool over UB or over VPC, or
#: the prefill instance's own host DRAM over PCIe (a KV-centric design, ``LOCAL_DRAM_LINK``).
CACHE_SOURCES = ("ems_ub", "ems_vpc", "local_dram")


@dataclass(frozen=True)
class DecodeBatch:
    """One decode iteration of a whole instance.

    ``num_requests`` running requests (over all DP ranks) whose mean context length is
    ``mean_kv_len`` tokens. With MTP every request feeds ``1 + mtp_tokens`` tokens per step.
    """

    num_requests: int
    mean_kv_len: float

    def __post_init__(self) -> None:
        if self.num_requests < 1:
            raise ValueError(f"num_requests must be >= 1 (got {self.num_requests})")
        if not self.mean_kv_len >= 0:
            raise ValueError(f"mean_kv_len must be >= 0 (got {self.mean_kv_len})")


@dataclass(frozen=True)
class PrefillBatch:
    """Prompts packed into one prefill batch of a whole instance.

    ``cached_prefix_lens[i]`` tokens of prompt ``i`` come from the context cache: only the
    suffix is computed, but the suffix still attends over the full prefix. An empty tuple
    means nothing is cached. ``cache_source`` (one of ``CACHE_SOURCES``) is where the batch
    reads those prefixes from; the fetch is priced as part of the batch.
    """

    prompt_lens: tuple[int, ...]
    cached_prefix_lens: tuple[int, ...] = ()
    cache_source: str = "ems_ub"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_lens", tuple(int(n) for n in self.prompt_lens))
        cached = tuple(int(c) for c in self.cached_prefix_lens) or (0,) * len(self.prompt_lens)
        object.__setattr__(self, "cached_prefix_lens", cached)
        if not self.prompt_lens:
            raise ValueError("prompt_lens must not be empty")
        if self.cache_source not in CACHE_SOURCES:
            raise ValueError(f"cache_source must be one of {CACHE_SOURCES} "
                             f"(got {self.cache_source!r})")
        if len(cached) != len(self.prompt_lens):
            raise ValueError("cached_prefix_lens must have one entry per prompt")
        for n, c in zip(self.prompt_lens, cached):
            if n < 1:
                raise ValueError(f"prompt_lens must be >= 1 (got {n})")
            if not 0 <= c < n:
                raise ValueError(f"cached_prefix_lens must be in [0, prompt_len) (got {c} of {n})")

    @property
    def num_computed_tokens(self) -> int:
        """Tokens whose forward pass runs (the uncached suffixes)."""
        return sum(self.prompt_lens) - sum(self.cached_prefix_lens)


@dataclass(frozen=True)
class Timing:
    """The modelled time of one piece of work and why it takes that long.

    ``breakdown`` maps a part (attention, moe_gemm, dispatch, ...) to its busy seconds on the
    critical die; parts of two overlapped microbatch streams run concurrently, so
    ``sum(breakdown) - overlap_s == total_s``. ``bounds`` names the resource bounding each part.
    ``notes`` records every clamp or mode choice the model made (never silent).
    """

    total_s: float
    breakdown: Mapping[str, float] = field(default_factory=dict)
    bounds: Mapping[str, str] = field(default_factory=dict)
    overlap_s: float = 0.0
    num_tokens: int = 0
    compute_util: float = 0.0
    hbm_util: float = 0.0
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "breakdown", MappingProxyType(dict(self.breakdown)))
        object.__setattr__(self, "bounds", MappingProxyType(dict(self.bounds)))
        if not self.total_s >= 0:
            raise ValueError(f"total_s must be >= 0 (got {self.total_s})")

    def as_dict(self) -> dict:
        """A JSON-ready view."""
        return {"total_s": self.total_s, "breakdown": dict(self.breakdown),
                "bounds": dict(self.bounds), "overlap_s": self.overlap_s,
                "num_tokens": self.num_tokens, "compute_util": self.compute_util,
                "hbm_util": self.hbm_util, "notes": list(self.notes)}
