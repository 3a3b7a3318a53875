"""What /health and /ready say about the pools.

`/health` is the full-strength check for people and alerting: `ok` (HTTP 200) only while every
pool has at least its configured number of live workers (`expected_pools`: `num_prefill`,
`num_decode`, and one EMS replica when the deployment runs one, for the shared prefix cache or
for model loads; a draining worker no longer counts), else
`degraded` (HTTP 503) naming the pools that are short. `loading` counts the registered workers
of each pool still loading their model (not routed to, so not live yet); `switching` maps the
workers on their way to another served model (out of routing meanwhile) to that model.
`/ready` is the can-serve check for load balancers and readiness probes: 200 while every pool
a request needs has a live worker. Both carry the scheduler's `instance_id`, so a launcher can
tell its own scheduler from another server on the same port.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from supernode.config import ClusterConfig
from supernode.engine.registry import WorkerKind, WorkerRegistry, WorkerState
from supernode.policy.kv_affinity import uses_local_cache

SERVING_POOLS = (WorkerKind.PREFILL, WorkerKind.DECODE)


def expected_pools(config: ClusterConfig) -> dict[WorkerKind, int]:
    """The configured size of each pool. EMS: one replica when the shared prefix cache is on
    (not kv-affinity's local caches) or workers load their model through it."""
    shared_cache = config.cache.enabled and not uses_local_cache(config.routing_policy)
    return {WorkerKind.PREFILL: config.num_prefill, WorkerKind.DECODE: config.num_decode,
            WorkerKind.EMS: int(shared_cache or config.model_load.enabled)}


def health_report(registry: WorkerRegistry, expected: Mapping[WorkerKind, int],
                  instance_id: str) -> tuple[dict[str, Any], int]:
    """The /health body and its HTTP status."""
    live = {kind: len(registry.live(kind)) for kind in WorkerKind}
    least = {kind: max(1, expected.get(kind, 1)) if kind in SERVING_POOLS
             else expected.get(kind, 0) for kind in WorkerKind}
    short = [kind.value for kind in WorkerKind if live[kind] < least[kind]]
    body = {"status": "degraded" if short else "ok", "instance_id": instance_id,
            "workers": {kind.value: n for kind, n in live.items()},
            "expected": {kind.value: n for kind, n in expected.items()},
            "degraded_pools": short,
            "loading": loading_counts(registry),
            "draining": [w.worker_id for w in registry.all() if w.draining],
            "switching": {w.worker_id: w.switching_to for w in registry.all()
                          if w.switching_to}}
    return body, 503 if short else 200


def loading_counts(registry: WorkerRegistry) -> dict[str, int]:
    """Registered workers per pool still loading their model (not routed to yet)."""
    return {k.value: sum(w.state is WorkerState.LOADING for w in registry.registered(k))
            for k in WorkerKind}


def ready_report(registry: WorkerRegistry, instance_id: str) -> tuple[dict[str, Any], int]:
    """The /ready body and its HTTP status."""
    empty = [kind.value for kind in SERVING_POOLS if not registry.live(kind)]
    return ({"ready": not empty, "instance_id": instance_id, "empty_pools": empty},
            503 if empty else 200)
