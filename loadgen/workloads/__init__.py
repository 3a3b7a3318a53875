"""Workloads: each builds a list of `SampleRequest`s from its frozen config and a seed.

Adding a workload means one file with a frozen dataclass that has
`build(num_prompts: int, seed: int) -> list[SampleRequest]`, and one line in `WORKLOADS`.
A synthetic workload may also offer `iter_samples` (the same samples, one at a time) so the
simulator can stream millions of them; `iter_samples(workload, ...)` falls back to `build`.
Names are vLLM's `--dataset-name` values where vLLM has one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from loadgen.types import SampleRequest
from loadgen.workloads.mooncake import MooncakeTraceWorkload
from loadgen.workloads.prefix_repetition import PrefixRepetitionWorkload
from loadgen.workloads.random_tokens import RandomWorkload
from loadgen.workloads.sharegpt import ShareGptWorkload


class Workload(Protocol):
    def build(self, num_prompts: int, seed: int) -> list[SampleRequest]:
        """Exactly `num_prompts` samples (fewer only when a file holds fewer), deterministic
        for a given seed."""
        ...


def iter_samples(workload: Workload, num_prompts: int, seed: int) -> Iterator[SampleRequest]:
    """`workload`'s samples one at a time: streamed where it can, else from `build`."""
    stream = getattr(workload, "iter_samples", None)
    if stream is not None:
        return stream(num_prompts, seed)
    return iter(workload.build(num_prompts, seed))


WORKLOADS: dict[str, type] = {
    "random": RandomWorkload,
    "sharegpt": ShareGptWorkload,
    "prefix_repetition": PrefixRepetitionWorkload,
    "mooncake": MooncakeTraceWorkload,
}

__all__ = [
    "WORKLOADS",
    "MooncakeTraceWorkload",
    "PrefixRepetitionWorkload",
    "RandomWorkload",
    "ShareGptWorkload",
    "Workload",
    "iter_samples",
]
