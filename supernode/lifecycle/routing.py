"""Where a request goes: the live registry filtered for the request (its model, the workers it
lost), then the routing policy."""

from __future__ import annotations

from collections.abc import Iterator

from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry
from supernode.lifecycle.errors import NoWorkers, RequestTooLarge
from supernode.lifecycle.models import ModelStage
from supernode.lifecycle.request import Request
from supernode.policy import RouteRequest, RoutingPolicy


class Router:
    """Chooses instances for requests with one policy per pool, among the instances that hold
    the request's model (`models`).

    `block_size` > 0 gives the policies each prompt's prefix-block keys (cache-aware routing).
    """

    def __init__(self, registry: WorkerRegistry, prefill_policy: RoutingPolicy,
                 decode_policy: RoutingPolicy, block_size: int = 0,
                 models: ModelStage | None = None) -> None:
        self.registry = registry
        self.prefill_policy = prefill_policy
        self.decode_policy = decode_policy
        self.block_size = block_size
        self.models = models

    def check_pools(self) -> None:
        """Raise NoWorkers when a pool every request needs is empty (an instance on its way to
        another model counts: it will serve again)."""
        for kind in (WorkerKind.PREFILL, WorkerKind.DECODE):
            if not self.registry.live(kind) and not self.registry.switching(kind):
                raise NoWorkers(kind.value)

    def check_fits(self, request: Request) -> None:
        """Raise RequestTooLarge when no decode instance could ever hold the request's KV."""
        if request.num_remaining <= 1:
            return
        decodes = self._holding(WorkerKind.DECODE, request)
        need = request.num_prompt_tokens + request.n * request.max_tokens
        largest = max((w.kv_capacity_tokens for w in decodes), default=0)
        if not decodes and self.models is not None and not self.models.single:
            largest = self.models.kv_capacity_tokens(request.model)
        if largest and need > largest:
            what = "prompt + max_tokens" if request.n == 1 else "prompt + n x max_tokens"
            raise RequestTooLarge(f"{what} = {need} tokens exceeds the KV capacity "
                                  f"of the largest decode instance ({largest} tokens)")
        widest = max((w.max_num_seqs for w in decodes), default=0)
        if widest and request.n > widest:
            raise RequestTooLarge(f"n = {request.n} choices exceed the batch of the largest "
                                  f"decode instance ({widest} sequences)")

    def decode_order(self, request: Request) -> Iterator[WorkerInfo]:
        """Live decode instances in the order the policy would try them (each asked once)."""
        candidates = self.candidates(WorkerKind.DECODE, request)
        route = self.route(request)
        while candidates:
            worker = self.decode_policy.choose(route, candidates)
            candidates = [w for w in candidates if w.worker_id != worker.worker_id]
            yield worker

    def on_decode_chosen(self, request: Request, worker: WorkerInfo) -> None:
        self.decode_policy.on_routed(self.route(request), worker)

    def choose_prefill(self, request: Request) -> WorkerInfo:
        workers = self.candidates(WorkerKind.PREFILL, request)
        route = self.route(request)
        worker = self.prefill_policy.choose(route, workers)
        self.prefill_policy.on_routed(route, worker)
        return worker

    def candidates(self, kind: WorkerKind, request: Request) -> list[WorkerInfo]:
        """Live workers of `kind`, without those this request already lost (unless that leaves
        none: a lost worker may have come back)."""
        workers = self._holding(kind, request)
        if not workers:
            raise NoWorkers(kind.value)
        if not request.lost_worker_ids:
            return workers
        fresh = [w for w in workers if w.worker_id not in request.lost_worker_ids]
        return fresh or workers

    def _holding(self, kind: WorkerKind, request: Request) -> list[WorkerInfo]:
        """Routable workers of `kind` that hold the request's model."""
        if self.models is None:
            return self.registry.live(kind)
        return self.models.holders(request.model, kind)

    def route(self, request: Request) -> RouteRequest:
        return RouteRequest(request.request_id, request.num_prompt_tokens, request.max_tokens,
                            request.block_keys if self.block_size else (), self.block_size)
