"""KV affinity: the KV-centric design the paper argues against (Mooncake, Dynamo style).

Each prefill instance keeps its own local prefix cache, so the scheduler sends a request to the
instance that holds the longest prefix of its blocks, unless that instance is too busy:

    score(w) = matched_tokens(w) - alpha * outstanding_tokens(w)        (highest wins)

- `matched_tokens(w)`: leading blocks of the request found in the index of instance `w`, times
  the block size. The index is the scheduler's belief of what `w` stored: every prefill the
  policy routed to `w` adds the prompt's full-block keys (the instance stores exactly those), in
  an LRU bounded by `max_num_blocks_per_worker`. A stale entry (the instance evicted the block)
  only costs a misrouted request; the instance still verifies its own cache.
- `outstanding_tokens(w)`: the larger of the tokens `w` last reported queued and its in-flight
  requests times the running mean of uncached tokens per routed request (the heartbeat lags,
  the in-flight count does not).
- `alpha` (default 1.0) converts queued tokens into cached-token equivalents: one token of
  queued work delays the request about as much as one cached token saves, so alpha = 1 picks
  roughly the instance with the lowest expected TTFT (Mooncake's conductor rule). Lower alpha
  favours affinity more; alpha -> infinity is least-loaded routing.

Ties (e.g. no instance holds the prefix, all idle) fall back to the least-loaded order. Decode
instances hold no prefix cache: for them the policy is least-loaded routing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from supernode.engine.registry import WorkerInfo, WorkerKind
from supernode.policy.base import RouteRequest
from supernode.policy.least_loaded import load_score

NAME = "kv-affinity"
"""The policy's name in the table, config and CLI."""

DEFAULT_ALPHA = 1.0
DEFAULT_MAX_NUM_BLOCKS_PER_WORKER = 1 << 20
_EWMA_WEIGHT = 0.1


def uses_local_cache(routing_policy: str) -> bool:
    """True when `routing_policy` means per-instance local caches instead of the shared EMS."""
    return routing_policy == NAME


class KvAffinity:
    """Prefer the prefill instance holding the longest cached prefix, penalised by its load."""

    def __init__(self, alpha: float = DEFAULT_ALPHA,
                 max_num_blocks_per_worker: int = DEFAULT_MAX_NUM_BLOCKS_PER_WORKER) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if max_num_blocks_per_worker < 1:
            raise ValueError("max_num_blocks_per_worker must be >= 1")
        self.alpha = alpha
        self.max_num_blocks_per_worker = max_num_blocks_per_worker
        self._index: dict[str, OrderedDict[bytes, None]] = {}
        self._mean_new_tokens = 0.0
        self._num_routed = 0

    def choose(self, request: RouteRequest, workers: Sequence[WorkerInfo]) -> WorkerInfo:
        return min(workers, key=lambda w: (-self.score(request, w), load_score(w), w.worker_id))

    def on_routed(self, request: RouteRequest, worker: WorkerInfo) -> None:
        if worker.kind is not WorkerKind.PREFILL:
            return
        new_tokens = request.num_prompt_tokens - self.matched_tokens(request, worker.worker_id)
        weight = _EWMA_WEIGHT if self._num_routed else 1.0
        self._mean_new_tokens += weight * (new_tokens - self._mean_new_tokens)
        self._num_routed += 1
        index = self._index.setdefault(worker.worker_id, OrderedDict())
        for key in request.block_keys:
            index[key] = None
            index.move_to_end(key)
        while len(index) > self.max_num_blocks_per_worker:
            index.popitem(last=False)

    def score(self, request: RouteRequest, worker: WorkerInfo) -> float:
        """Matched prefix tokens minus alpha times outstanding tokens (0 for non-prefill)."""
        if worker.kind is not WorkerKind.PREFILL:
            return 0.0
        outstanding = max(worker.load.num_queued_tokens,
                          worker.num_inflight * self._mean_new_tokens)
        return self.matched_tokens(request, worker.worker_id) - self.alpha * outstanding

    def matched_tokens(self, request: RouteRequest, worker_id: str) -> int:
        """Tokens of the longest prefix of `request` that `worker_id` is believed to hold."""
        index = self._index.get(worker_id)
        if not index:
            return 0
        num_blocks = 0
        for key in request.block_keys:
            if key not in index:
                break
            num_blocks += 1
        return num_blocks * request.block_size

