"""Routing policies and their table of names."""

import pytest

from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerLoad
from supernode.policy import POLICIES, RouteRequest, make_policy

REQ = RouteRequest("r", 100, 10)


def decode(worker_id: str, running: int, inflight: int = 0) -> WorkerInfo:
    return WorkerInfo(worker_id, WorkerKind.DECODE, "x", max_num_seqs=10,
                      load=WorkerLoad(num_running=running), num_inflight=inflight)


def test_least_loaded_picks_the_emptiest_worker() -> None:
    """The worker with the least outstanding work relative to its size wins."""
    policy = make_policy("least-loaded")
    assert policy.choose(REQ, [decode("a", 5), decode("b", 2), decode("c", 9)]).worker_id == "b"


def test_least_loaded_uses_fresh_inflight_counts() -> None:
    """In-flight requests the scheduler just sent count even before a heartbeat shows them."""
    policy = make_policy("least-loaded")
    assert policy.choose(REQ, [decode("a", 1, inflight=6), decode("b", 3)]).worker_id == "b"


def test_prefill_load_is_queued_tokens_over_budget() -> None:
    """Prefill instances are compared by queued prompt tokens per batch budget."""
    big = WorkerInfo("big", WorkerKind.PREFILL, "x", num_dies=32, max_num_batched_tokens=10_000,
                     load=WorkerLoad(num_queued_tokens=5000))
    small = WorkerInfo("small", WorkerKind.PREFILL, "x", num_dies=4,
                       max_num_batched_tokens=1000, load=WorkerLoad(num_queued_tokens=900))
    assert make_policy("least-loaded").choose(REQ, [big, small]).worker_id == "big"


def test_round_robin_cycles() -> None:
    """Round robin visits workers in order."""
    policy = make_policy("round-robin")
    workers = [decode("a", 0), decode("b", 0)]
    assert [policy.choose(REQ, workers).worker_id for _ in range(3)] == ["a", "b", "a"]


def test_unknown_policy_lists_the_known_ones() -> None:
    """A typo gets an error naming the valid policies."""
    with pytest.raises(ValueError, match="least-loaded"):
        make_policy("fastest")
    assert "least-loaded" in POLICIES
