"""`prefix_repetition` workload: prompts that share long prefixes, for prefix-cache (EMS) studies.

Each prompt is one of a set of random prefixes followed by a fresh random suffix. Two ways to
choose the prefix:
- `reuse_rate` unset (vLLM's scheme): `num_prefixes` prefixes, each used by an equal share of
  the requests, in shuffled order.
- `reuse_rate` = p: request i reuses an already-used prefix with probability p (picked
  uniformly among those used so far), else starts a new one. The first request is always new,
  so the realised reuse rate over n requests is close to p * (n - 1) / n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loadgen.types import SampleRequest
from loadgen.workloads.tokens import random_token_ids


@dataclass(frozen=True)
class PrefixRepetitionWorkload:
    """Lengths in tokens; `reuse_rate` in [0, 1] or None for vLLM's equal-share scheme."""

    prefix_len: int = 256
    suffix_len: int = 256
    num_prefixes: int = 10
    output_len: int = 128
    reuse_rate: float | None = None

    def __post_init__(self) -> None:
        if self.prefix_len < 0 or self.suffix_len < 0 or self.prefix_len + self.suffix_len < 1:
            raise ValueError("prefix and suffix lengths must be >= 0 with a positive sum")
        if self.num_prefixes < 1 or self.output_len < 1:
            raise ValueError("num_prefixes and output_len must be >= 1")
        if self.reuse_rate is not None and not 0 <= self.reuse_rate <= 1:
            raise ValueError(f"reuse rate must be in [0, 1], got {self.reuse_rate}")

    def build(self, num_prompts: int, seed: int) -> list[SampleRequest]:
        rng = np.random.default_rng(seed)
        choice = self._prefix_choice(rng, num_prompts)
        prefixes = [
            random_token_ids(rng, self.prefix_len) for _ in range(max(choice, default=0) + 1)
        ]
        samples = []
        for index in choice:
            prompt = prefixes[index] + random_token_ids(rng, self.suffix_len)
            samples.append(SampleRequest(prompt, len(prompt), self.output_len))
        return samples

    def _prefix_choice(self, rng: np.random.Generator, n: int) -> list[int]:
        """Index of the prefix each request uses."""
        if self.reuse_rate is None:
            order = [i % self.num_prefixes for i in range(n)]
            rng.shuffle(order)
            return order
        choice: list[int] = []
        num_used = 0
        for _ in range(n):
            if num_used and rng.random() < self.reuse_rate:
                choice.append(int(rng.integers(0, num_used)))
            else:
                choice.append(num_used)
                num_used += 1
        return choice
