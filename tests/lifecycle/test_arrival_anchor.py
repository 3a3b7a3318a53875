"""A request's first stage is anchored at its arrival: the front end's work before the
lifecycle accepts it (parsing, tokenizing) is absorbed into the modelled time."""

from __future__ import annotations

from supernode.config import ClusterConfig
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry
from supernode.lifecycle.request import Request
from supernode.lifecycle.scheduler import Lifecycle


def accepted(arrived_at: float, now: float) -> Request:
    registry = WorkerRegistry(lease_s=float("inf"))
    registry.register(WorkerInfo("p0", WorkerKind.PREFILL, "x"), 0.0)
    registry.register(WorkerInfo("d0", WorkerKind.DECODE, "x", kv_capacity_tokens=100_000,
                                 max_num_seqs=16), 0.0)
    r = Request("r", 100, 10, seed=1, arrived_at=arrived_at,
                prompt_token_ids=list(range(100)), output_token_ids=[])
    Lifecycle(ClusterConfig(), registry).accept(r, now)
    return r


def test_the_first_stage_starts_at_arrival_not_at_acceptance() -> None:
    assert accepted(arrived_at=10.0, now=10.004).stage_at == 10.0
    assert accepted(arrived_at=10.0, now=10.0).stage_at == 10.0  # the simulator's case
