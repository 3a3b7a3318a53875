"""kv-affinity routing: longest cached prefix first, traded against load; p2p is least-loaded."""

import pytest

from supernode.cache.hashing import block_keys
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerLoad
from supernode.policy import POLICIES, RouteRequest, make_policy
from supernode.policy.kv_affinity import KvAffinity, uses_local_cache
from supernode.policy.least_loaded import LeastLoaded

BLOCK = 4


def request(tokens: list[int], request_id: str = "r") -> RouteRequest:
    return RouteRequest(request_id, len(tokens), 8, tuple(block_keys(tokens, BLOCK, "ns")), BLOCK)


def prefill(worker_id: str, queued: int = 0, inflight: int = 0) -> WorkerInfo:
    return WorkerInfo(worker_id, WorkerKind.PREFILL, "x", num_dies=2, max_num_batched_tokens=100,
                      load=WorkerLoad(num_queued_tokens=queued), num_inflight=inflight)


def route(policy: KvAffinity, req: RouteRequest, workers: list[WorkerInfo]) -> str:
    worker = policy.choose(req, workers)
    policy.on_routed(req, worker)
    return worker.worker_id


def test_repeated_prefix_goes_where_it_was_stored() -> None:
    """A prompt sharing a stored prefix goes to the instance that stored it, even if that
    instance is not the least loaded by id order."""
    policy = KvAffinity()
    a, b = prefill("a"), prefill("b")
    assert route(policy, request(list(range(16))), [b]) == "b"
    assert route(policy, request(list(range(12)) + [99] * 8), [a, b]) == "b"
    assert policy.matched_tokens(request(list(range(16))), "b") == 16


def test_match_is_a_longest_prefix_that_stops_at_the_first_miss() -> None:
    """Blocks after a differing block do not count: chained keys differ from there on."""
    policy = KvAffinity()
    policy.on_routed(request(list(range(16))), prefill("a"))
    assert policy.matched_tokens(request([0, 1, 2, 3, 7, 7, 7, 7, 8, 9, 10, 11]), "a") == 4
    assert policy.matched_tokens(request(list(range(16)), "other"), "b") == 0


def test_load_outweighs_a_short_prefix() -> None:
    """score = matched tokens - alpha * outstanding tokens: a busy holder loses to an idle peer."""
    policy = KvAffinity(alpha=1.0)
    policy.on_routed(request(list(range(8))), prefill("a"))
    req = request(list(range(8)) + [5] * 92)
    assert route(policy, req, [prefill("a", queued=50), prefill("b")]) == "b"
    assert KvAffinity(alpha=0.0).choose(req, [prefill("b"), prefill("a", queued=50)]) \
        .worker_id == "b"  # nothing stored in a fresh policy: least-loaded order


def test_inflight_requests_count_as_outstanding_work() -> None:
    """Requests routed but not yet in a heartbeat count at the mean uncached size."""
    policy = KvAffinity()
    for i in range(20):  # mean uncached tokens -> 100
        policy.on_routed(request([1000 + i] * 100), prefill("c"))
    req = request([7] * 100)
    assert route(policy, req, [prefill("a", inflight=2), prefill("b", inflight=1)]) == "b"


def test_index_is_bounded_per_worker() -> None:
    """The scheduler's belief of a worker's cache forgets its least recently routed blocks."""
    policy = KvAffinity(max_num_blocks_per_worker=2)
    policy.on_routed(request(list(range(8))), prefill("a"))
    policy.on_routed(request([9] * 8), prefill("a"))
    assert policy.matched_tokens(request(list(range(8))), "a") == 0
    assert policy.matched_tokens(request([9] * 8), "a") == 8


def test_decode_workers_are_routed_least_loaded_and_not_indexed() -> None:
    """Decode instances hold no prefix cache: routing them is least-loaded."""
    policy = KvAffinity()
    busy = WorkerInfo("a", WorkerKind.DECODE, "x", max_num_seqs=10, num_inflight=5)
    idle = WorkerInfo("b", WorkerKind.DECODE, "x", max_num_seqs=10)
    assert route(policy, request(list(range(8))), [busy, idle]) == "b"
    assert policy.matched_tokens(request(list(range(8))), "b") == 0


def test_names_in_the_table() -> None:
    """p2p is least-loaded routing; kv-affinity alone means per-instance local caches."""
    assert POLICIES["p2p"] is LeastLoaded and isinstance(make_policy("kv-affinity"), KvAffinity)
    assert uses_local_cache("kv-affinity") and not uses_local_cache("p2p")
    with pytest.raises(ValueError, match="alpha"):
        KvAffinity(alpha=-1)
