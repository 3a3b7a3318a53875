"""The routing-policy contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from supernode.engine.registry import WorkerInfo


@dataclass(frozen=True)
class RouteRequest:
    """What a policy may know about a request when it places it."""

    request_id: str
    num_prompt_tokens: int
    max_tokens: int
    block_keys: tuple[bytes, ...] = ()
    """Chained prefix-block keys of the prompt (for cache-aware policies)."""
    block_size: int = 0
    """Tokens per block of `block_keys`."""


class RoutingPolicy(Protocol):
    """Chooses one worker of a pool for a request. `workers` is never empty."""

    def choose(self, request: RouteRequest, workers: Sequence[WorkerInfo]) -> WorkerInfo: ...

    def on_routed(self, request: RouteRequest, worker: WorkerInfo) -> None:
        """Told where the request went (policies with memory update it here)."""
        ...
