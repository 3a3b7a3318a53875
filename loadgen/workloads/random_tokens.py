"""`random` workload: random token-id prompts with input and output lengths drawn uniformly.

As in vLLM, lengths are drawn from [L * (1 - r), L * (1 + r)] for a range ratio r in [0, 1);
`prefix_len` ids shared by every request are prepended (not counted in the drawn length).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from loadgen.types import SampleRequest
from loadgen.workloads.tokens import random_token_ids


@dataclass(frozen=True)
class RandomWorkload:
    """Lengths are in tokens; `range_ratio` is the half-width of the uniform length range."""

    input_len: int = 1024
    output_len: int = 128
    range_ratio: float = 0.0
    prefix_len: int = 0

    def __post_init__(self) -> None:
        if self.input_len < 1 or self.output_len < 1 or self.prefix_len < 0:
            raise ValueError("random input/output lengths must be >= 1, prefix >= 0")
        if not 0 <= self.range_ratio < 1:
            raise ValueError(f"random range ratio must be in [0, 1), got {self.range_ratio}")

    def build(self, num_prompts: int, seed: int) -> list[SampleRequest]:
        return list(self.iter_samples(num_prompts, seed))

    def iter_samples(self, num_prompts: int, seed: int) -> Iterator[SampleRequest]:
        """The samples of `build`, one at a time (a simulated run holds only those in flight)."""
        rng = np.random.default_rng(seed)
        prefix = random_token_ids(rng, self.prefix_len)
        input_lens = _uniform_lengths(rng, self.input_len, self.range_ratio, num_prompts)
        output_lens = _uniform_lengths(rng, self.output_len, self.range_ratio, num_prompts)
        for in_len, out_len in zip(input_lens, output_lens):
            own = random_token_ids(rng, int(in_len))
            prompt = prefix + own if prefix else own  # no copy of 2k ids without a prefix
            yield SampleRequest(prompt, len(prompt), max(1, int(out_len)))


def _uniform_lengths(rng: np.random.Generator, mean: int, ratio: float, n: int) -> np.ndarray:
    low = max(1, int(np.floor(mean * (1 - ratio))))
    high = max(low, int(np.ceil(mean * (1 + ratio))))
    return rng.integers(low, high + 1, size=n)
