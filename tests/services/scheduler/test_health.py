"""/health against configured pool sizes, and /ready."""

from __future__ import annotations

from services.scheduler.health import expected_pools, health_report, ready_report
from supernode.config import load_config
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry, WorkerState

PREFILL, DECODE, EMS = WorkerKind.PREFILL, WorkerKind.DECODE, WorkerKind.EMS
EXPECTED = {PREFILL: 1, DECODE: 2, EMS: 1}


def registry(*workers: tuple[str, WorkerKind]) -> WorkerRegistry:
    r = WorkerRegistry(lease_s=3.0)
    for worker_id, kind in workers:
        r.register(WorkerInfo(worker_id, kind, f"{worker_id}:1"), 0.0)
    return r


def test_full_pools_are_ok() -> None:
    """Every pool at its configured size: 200, status ok, the instance id echoed."""
    body, status = health_report(registry(("p0", PREFILL), ("d0", DECODE), ("d1", DECODE),
                                          ("e0", EMS)), EXPECTED, "abc")
    assert status == 200 and body["status"] == "ok" and body["instance_id"] == "abc"
    assert body["workers"] == {"prefill": 1, "decode": 2, "ems": 1}


def test_a_pool_below_its_size_is_degraded_and_named_but_still_ready() -> None:
    """One decode of two missing: /health 503 naming the decode pool; /ready stays 200
    (requests can still be served)."""
    r = registry(("p0", PREFILL), ("d0", DECODE), ("e0", EMS))
    body, status = health_report(r, EXPECTED, "abc")
    assert status == 503 and body["status"] == "degraded"
    assert body["degraded_pools"] == ["decode"] and body["expected"]["decode"] == 2
    assert ready_report(r, "abc")[1] == 200


def test_a_draining_worker_no_longer_counts() -> None:
    """A draining worker takes no new requests, so the pool is short while it drains."""
    r = registry(("p0", PREFILL), ("d0", DECODE), ("d1", DECODE), ("e0", EMS))
    r.drain("d1")
    body, status = health_report(r, EXPECTED, "abc")
    assert status == 503 and body["draining"] == ["d1"]


def test_an_empty_pool_is_not_ready() -> None:
    """No prefill worker at all: /ready is 503 naming the empty pool."""
    body, status = ready_report(registry(("d0", DECODE)), "abc")
    assert status == 503 and body["empty_pools"] == ["prefill"]


def test_a_missing_ems_is_degraded_when_the_deployment_uses_one() -> None:
    """With the shared EMS expected, no EMS replica is `degraded` naming it (requests still
    run, without the cache: /ready stays 200); without EMS expected, none is fine."""
    r = registry(("p0", PREFILL), ("d0", DECODE), ("d1", DECODE))
    body, status = health_report(r, EXPECTED, "abc")
    assert status == 503 and body["degraded_pools"] == ["ems"]
    assert ready_report(r, "abc")[1] == 200
    assert health_report(r, {PREFILL: 1, DECODE: 2, EMS: 0}, "abc")[1] == 200


def test_loading_workers_are_counted_but_not_live() -> None:
    """A decode still loading its model is listed under `loading`, not `workers`: the pool is
    short (degraded) until it is ready."""
    r = registry(("p0", PREFILL), ("d0", DECODE), ("e0", EMS))
    r.register(WorkerInfo("d1", DECODE, "d1:1", state=WorkerState.LOADING), 0.0)
    body, status = health_report(r, EXPECTED, "abc")
    assert status == 503 and body["degraded_pools"] == ["decode"]
    assert body["workers"]["decode"] == 1
    assert body["loading"] == {"prefill": 0, "decode": 1, "ems": 0}


def test_expected_pools_follow_the_config() -> None:
    """Pool sizes come from num_prefill/num_decode; one EMS replica is expected while the
    shared prefix cache is on or model loads go through EMS, none with kv-affinity's local
    caches and no model load, or with the cache off."""
    assert expected_pools(load_config(None, {"num_decode": 3})) == {PREFILL: 1, DECODE: 3,
                                                                    EMS: 1}
    assert expected_pools(load_config(None, {"routing_policy": "kv-affinity"}))[EMS] == 0
    assert expected_pools(load_config(None, {"cache.enabled": False}))[EMS] == 0
    assert expected_pools(load_config(None, {"cache.enabled": False,
                                             "model_load.source": "obs"}))[EMS] == 1
