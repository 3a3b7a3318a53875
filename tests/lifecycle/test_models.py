"""Several served models in the lifecycle: routing by model, switch decisions, waiting lines."""

from __future__ import annotations

import pytest

from supernode.config import ClusterConfig, load_config
from supernode.deployment import instance_deployment
from supernode.engine.registry import (
    WorkerInfo,
    WorkerKind,
    WorkerLoad,
    WorkerRegistry,
    WorkerState,
)
from supernode.lifecycle.errors import RequestFailed, UnknownModel
from supernode.lifecycle.models import ModelSwitch, initial_model
from supernode.lifecycle.request import Request
from supernode.lifecycle.scheduler import Lifecycle
from supernode.perf.load import switch_time

MODELS = ["deepseek-r1", "deepseek-r1@v2", "deepseek-r1@v3"]
P, D = WorkerKind.PREFILL, WorkerKind.DECODE


class Harness:
    """A lifecycle over a registry of two prefill and two decode instances (A on *-0, B on
    *-1), recording its wake-ups and switch orders."""

    def __init__(self, **overrides: object) -> None:
        self.config = load_config(None, {"served_models": MODELS, "num_prefill": 2,
                                         "num_decode": 2, **overrides})
        self.registry = WorkerRegistry(lease_s=float("inf"))
        self.turns: list[tuple[str, float]] = []
        self.switches: list[ModelSwitch] = []
        self.lc = Lifecycle(self.config, self.registry,
                            lambda r, now: self.turns.append((r.request_id, now)),
                            lambda s, now: self.switches.append(s))
        for kind in (P, D):
            for i in range(2):
                self.register(f"{kind.value}-{i}", kind, initial_model(self.config, i).name)
        self.n = 0

    def register(self, worker_id: str, kind: WorkerKind, model: str,
                 state: WorkerState = WorkerState.READY) -> None:
        self.registry.register(WorkerInfo(
            worker_id, kind, "addr", num_dies=320, kv_capacity_tokens=10**6, max_num_seqs=100,
            max_num_batched_tokens=16384 if kind is P else 0, model=model, state=state), 0.0)

    def request(self, model: str, now: float = 0.0, max_tokens: int = 8) -> Request:
        self.n += 1
        r = Request(f"r{self.n}", 100, max_tokens, seed=self.n, arrived_at=now, model=model)
        self.lc.accept(r, now)
        return r

    def finish_switch(self, switch: ModelSwitch, now: float):
        """The worker reports ready with its new model (as its registration would)."""
        self.register(switch.worker_id, switch.kind, switch.to.name)
        return self.lc.on_worker_update(switch.worker_id, now)


def test_initial_placement_is_round_robin_by_instance() -> None:
    """Instance i of a pool starts with served model i mod M."""
    config = load_config(None, {"served_models": MODELS})
    assert [initial_model(config, i).name for i in range(4)] == [*MODELS, MODELS[0]]
    assert initial_model(ClusterConfig(), 5).name == "deepseek-r1"


def test_requests_are_routed_only_to_instances_holding_their_model() -> None:
    """A request for B goes to the B instances of both pools; one for A to the A ones."""
    h = Harness()
    b = h.request("deepseek-r1@v2")
    assert h.lc.model_wait(b, D, 0.0) is None
    assert [w.worker_id for w in h.lc.decode_order(b)] == ["decode-1"]
    assert h.lc.model_wait(b, P, 0.0) is None
    assert h.lc.choose_prefill(b, 0.0).worker_id == "prefill-1"
    a = h.request("deepseek-r1")
    assert [w.worker_id for w in h.lc.decode_order(a)] == ["decode-0"]
    assert h.switches == []


def test_an_unknown_model_is_refused_with_404() -> None:
    """A model the deployment does not serve is refused before anything else."""
    h = Harness()
    with pytest.raises(UnknownModel) as e:
        h.request("gpt-4")
    assert e.value.status == 404


def test_a_request_for_an_unheld_model_switches_one_instance_per_pool_and_waits() -> None:
    """No instance holds C: one prefill and one decode instance are told to switch (priced by
    switch_time from OBS), leave routing at once, and the request waits in line until the
    decode instance reports ready with C, then is routed to it."""
    h = Harness()
    c = h.request("deepseek-r1@v3", now=1.0)
    assert sorted((s.worker_id, s.to.name) for s in h.switches) == [
        ("decode-0", "deepseek-r1@v3"), ("prefill-0", "deepseek-r1@v3")]
    decode_switch = next(s for s in h.switches if s.kind is D)
    d = instance_deployment(h.config, "decode", "deepseek-r1")
    assert decode_switch.source == "obs" and decode_switch.decided_at == 1.0
    assert decode_switch.estimated_s == pytest.approx(switch_time(d, "obs").total_s)
    assert [w.worker_id for w in h.registry.live(D)] == ["decode-1"]
    wake_at = h.lc.model_wait(c, D, 1.0)
    assert wake_at == pytest.approx(1.0 + h.config.scheduler.model_wait_s)
    assert c.waiting_for_model is D

    done = h.finish_switch(decode_switch, 300.0)
    assert done is not None and done.seconds == pytest.approx(299.0)
    assert h.turns == [("r1", 300.0)]
    assert h.lc.model_wait(c, D, 300.0) is None
    assert [w.worker_id for w in h.lc.decode_order(c)] == ["decode-0"]
    assert len(h.switches) == 2  # nothing more was switched


def test_lru_switches_the_instance_routed_to_least_recently() -> None:
    """With 'lru', the instance whose last request is oldest switches."""
    h = Harness()
    for model, now in (("deepseek-r1@v2", 1.0), ("deepseek-r1", 2.0)):
        r = h.request(model, now)
        h.lc.model_wait(r, D, now)
        for worker in h.lc.decode_order(r):
            h.lc.on_admitted(r, worker, now)
            break
    h.request("deepseek-r1@v3", 3.0)
    assert next(s for s in h.switches if s.kind is D).worker_id == "decode-1"


def test_least_loaded_switches_the_instance_with_least_work() -> None:
    """With 'least-loaded', the candidate with the lowest load score switches."""
    h = Harness(**{"scheduler.switch_policy": "least-loaded"})
    h.registry.heartbeat("decode-0", WorkerLoad(num_running=50), 0.0)
    h.registry.heartbeat("decode-1", WorkerLoad(num_running=5), 0.0)
    h.request("deepseek-r1@v3")
    assert next(s for s in h.switches if s.kind is D).worker_id == "decode-1"


def test_an_unknown_switch_policy_is_an_error_naming_the_known_ones() -> None:
    """scheduler.switch_policy must name a policy of the table."""
    with pytest.raises(ValueError, match="lru, least-loaded"):
        Harness(**{"scheduler.switch_policy": "random"})


def test_a_failed_switch_lets_another_instance_switch() -> None:
    """A refused switch puts the instance back into routing with its model, and another
    instance is told to switch instead."""
    h = Harness()
    h.request("deepseek-r1@v3")
    first = next(s for s in h.switches if s.kind is D)
    assert h.lc.on_switch_failed(first.worker_id, 0.5) == first
    assert first.worker_id in [w.worker_id for w in h.registry.live(D)]
    second = [s for s in h.switches if s.kind is D][-1]
    assert second.worker_id != first.worker_id


def test_a_switching_worker_that_leaves_fails_its_switch() -> None:
    """A worker gone mid-switch (lease lapsed, process died) ends the switch; another one
    switches."""
    h = Harness()
    h.request("deepseek-r1@v3")
    first = next(s for s in h.switches if s.kind is D)
    h.registry.remove(first.worker_id)
    h.lc.on_worker_update(first.worker_id, 1.0)
    assert [s.worker_id for s in h.switches if s.kind is D] == [first.worker_id, "decode-1"]


def test_only_one_switch_per_model_and_pool_and_the_line_is_fifo() -> None:
    """Requests for the same unheld model share one switch; all are woken, in arrival order,
    when it is over."""
    h = Harness()
    waiting = [h.request("deepseek-r1@v3", now=float(i)) for i in range(3)]
    for r in waiting:
        assert h.lc.model_wait(r, D, r.arrived_at) is not None
    assert len([s for s in h.switches if s.kind is D]) == 1
    h.finish_switch(next(s for s in h.switches if s.kind is D), 100.0)
    assert [rid for rid, _ in h.turns] == ["r1", "r2", "r3"]


def test_the_last_holder_of_a_model_that_requests_wait_for_is_not_taken() -> None:
    """While requests wait for model C, the only C instance is not switched away to another
    model: the switch for D (no candidate left) waits until C's line is empty."""
    config = {"served_models": [*MODELS, "deepseek-r1@v4"]}
    h = Harness(**config)
    c = h.request("deepseek-r1@v3")
    c_switch = next(s for s in h.switches if s.kind is D)
    h.lc.model_wait(c, D, 0.0)
    h.finish_switch(c_switch, 10.0)  # decode-0 holds C; c is woken, not yet routed
    other = h.request("deepseek-r1@v4", now=10.0)
    h.lc.model_wait(other, D, 10.0)
    decode_switches = [s for s in h.switches if s.kind is D]
    assert [s.worker_id for s in decode_switches] == ["decode-0", "decode-1"]
    assert h.lc.model_wait(c, D, 10.0) is None  # c goes on with decode-0


def test_a_request_waits_no_longer_than_model_wait_s() -> None:
    """Past scheduler.model_wait_s without its model, the request fails (503)."""
    h = Harness(**{"scheduler.model_wait_s": 50.0})
    c = h.request("deepseek-r1@v3")
    h.lc.model_wait(c, D, 0.0)
    with pytest.raises(RequestFailed, match="model_wait_s"):
        h.lc.model_wait(c, D, 50.0)


def test_a_released_request_leaves_its_lines() -> None:
    """A request that ends (aborted, failed) no longer waits for its model."""
    h = Harness()
    c = h.request("deepseek-r1@v3")
    h.lc.model_wait(c, D, 0.0)
    assert h.lc.models.num_waiting == 1
    c.finish_reason = "abort"
    h.lc.release(c, 1.0)
    assert h.lc.models.num_waiting == 0 and h.lc.models.lines == {}


def test_with_one_model_nothing_changes() -> None:
    """A single served model: no line, no switch, every live instance is a candidate."""
    config = load_config(None, {"num_decode": 2})
    registry = WorkerRegistry(lease_s=float("inf"))
    lc = Lifecycle(config, registry)
    for i in range(2):
        registry.register(WorkerInfo(f"decode-{i}", D, "a", kv_capacity_tokens=10**6,
                                     max_num_seqs=10), 0.0)
    registry.register(WorkerInfo("prefill-0", P, "a", max_num_batched_tokens=100), 0.0)
    r = Request("r", 10, 4, seed=1, arrived_at=0.0)
    lc.accept(r, 0.0)
    assert r.model == "deepseek-r1" and lc.model_wait(r, D, 0.0) is None
    assert len(list(lc.decode_order(r))) == 2
