"""Worker registry: registration, heartbeats, lease expiry."""

from supernode.engine.registry import (
    ModelLoadInfo,
    WorkerInfo,
    WorkerKind,
    WorkerLoad,
    WorkerRegistry,
    WorkerState,
)


def test_workers_expire_after_their_lease() -> None:
    """A worker that stops heartbeating leaves routing once the lease lapses."""
    r = WorkerRegistry(lease_s=2.0)
    r.register(WorkerInfo("d0", WorkerKind.DECODE, "a:1"), now_s=0.0)
    r.register(WorkerInfo("d1", WorkerKind.DECODE, "a:2"), now_s=0.0)
    assert r.heartbeat("d0", WorkerLoad(num_running=3), now_s=1.5)
    assert [w.worker_id for w in r.expire(now_s=2.5)] == ["d1"]
    assert [w.worker_id for w in r.live(WorkerKind.DECODE)] == ["d0"]
    assert r.get("d0").load.num_running == 3


def test_heartbeat_from_unknown_worker_asks_it_to_register() -> None:
    """Heartbeats of forgotten workers return False."""
    assert not WorkerRegistry(1.0).heartbeat("x", WorkerLoad(), 0.0)


def test_inflight_counts_survive_reregistration() -> None:
    """Re-registering keeps the scheduler's in-flight count; it never goes negative."""
    r = WorkerRegistry(1.0)
    r.register(WorkerInfo("p0", WorkerKind.PREFILL, "a:1"), 0.0)
    r.add_inflight("p0", 2)
    r.register(WorkerInfo("p0", WorkerKind.PREFILL, "a:1"), 0.5)
    assert r.get("p0").num_inflight == 2
    r.add_inflight("p0", -5)
    assert r.get("p0").num_inflight == 0


def test_touch_renews_the_lease() -> None:
    """Proof of life other than a heartbeat (a flowing token stream) keeps a worker routed."""
    r = WorkerRegistry(lease_s=2.0)
    r.register(WorkerInfo("d0", WorkerKind.DECODE, "a:1"), now_s=0.0)
    r.touch("d0", now_s=1.9)
    r.touch("ghost", now_s=1.9)
    assert r.expire(now_s=3.0) == [] and r.get("ghost") is None
    assert [w.worker_id for w in r.expire(now_s=4.0)] == ["d0"]


def test_holder_is_the_worker_while_its_lease_runs() -> None:
    """An id is held while its lease runs and free once it lapsed, before `expire` runs too."""
    r = WorkerRegistry(lease_s=2.0)
    r.register(WorkerInfo("d0", WorkerKind.DECODE, "a:1"), now_s=0.0)
    assert r.holder("d0", now_s=2.0).address == "a:1"
    assert r.holder("d0", now_s=2.1) is None
    assert r.holder("ghost", now_s=0.0) is None


def test_loading_workers_are_registered_but_never_routed_to() -> None:
    """`live` (the routing view) lists ready workers only; `registered` and `all` list every
    state; a heartbeat carrying `ready` puts the worker into routing."""
    r = WorkerRegistry(5.0)
    r.register(WorkerInfo("d0", WorkerKind.DECODE, "a:1", state=WorkerState.LOADING,
                          model_load=ModelLoadInfo("deepseek-r1@v1", "obs", 269.0)), 0.0)
    r.register(WorkerInfo("d1", WorkerKind.DECODE, "a:2"), 0.0)
    assert [w.worker_id for w in r.live(WorkerKind.DECODE)] == ["d1"]
    assert [w.worker_id for w in r.registered(WorkerKind.DECODE)] == ["d0", "d1"]
    assert len(r.all()) == 2
    assert r.heartbeat("d0", WorkerLoad(), 1.0)  # no state given: unchanged
    assert r.get("d0").state is WorkerState.LOADING
    done = ModelLoadInfo("deepseek-r1@v1", "obs", 269.0, load_s=270.5)
    assert r.heartbeat("d0", WorkerLoad(), 2.0, WorkerState.READY, done)
    assert [w.worker_id for w in r.live(WorkerKind.DECODE)] == ["d0", "d1"]
    assert r.get("d0").model_load.load_s == 270.5


def test_a_draining_worker_leaves_routing_but_stays_known() -> None:
    """Draining takes a worker out of `live` at once; it keeps heartbeating (and its lease)
    until it leaves, and a new registration under its id (a new process) routes again."""
    r = WorkerRegistry(lease_s=2.0)
    r.register(WorkerInfo("d0", WorkerKind.DECODE, "a:1"), now_s=0.0)
    r.register(WorkerInfo("d1", WorkerKind.DECODE, "a:2"), now_s=0.0)
    assert r.drain("d0") and not r.drain("ghost")
    assert [w.worker_id for w in r.live(WorkerKind.DECODE)] == ["d1"]
    assert r.heartbeat("d0", WorkerLoad(num_running=2), now_s=1.5)
    assert r.get("d0").draining and [w.worker_id for w in r.all()] == ["d0", "d1"]
    r.register(WorkerInfo("d0", WorkerKind.DECODE, "a:3"), now_s=1.6)
    assert [w.worker_id for w in r.live(WorkerKind.DECODE)] == ["d0", "d1"]


def test_a_draining_worker_leaves_routing_whatever_its_state() -> None:
    """`live` needs both: a ready worker that drains leaves it, and so does a loading one that
    drains before it ever became ready (it never routes, even once it reports ready)."""
    r = WorkerRegistry(lease_s=2.0)
    r.register(WorkerInfo("d0", WorkerKind.DECODE, "a:1", state=WorkerState.LOADING), now_s=0.0)
    r.register(WorkerInfo("d1", WorkerKind.DECODE, "a:2"), now_s=0.0)
    assert r.drain("d0") and r.drain("d1")
    assert r.heartbeat("d0", WorkerLoad(), 1.0, WorkerState.READY)
    assert r.live(WorkerKind.DECODE) == []
    assert [w.worker_id for w in r.registered(WorkerKind.DECODE)] == ["d0", "d1"]


def test_a_switching_worker_leaves_routing_until_ready_with_its_new_model() -> None:
    """begin_switch takes the worker out of routing at once; registering again loading the
    new model keeps it out; a heartbeat ready with that model ends the switch."""
    r = WorkerRegistry(10.0)
    r.register(WorkerInfo("d0", WorkerKind.DECODE, "a:1", model="A"), 0.0)
    assert r.begin_switch("d0", "B") and not r.begin_switch("nobody", "B")
    assert r.live(WorkerKind.DECODE) == [] and [w.worker_id for w in
                                               r.switching(WorkerKind.DECODE)] == ["d0"]
    r.heartbeat("d0", WorkerLoad(), 1.0, WorkerState.READY, model="A")  # still draining A
    assert r.get("d0").switching_to == "B"
    r.register(WorkerInfo("d0", WorkerKind.DECODE, "a:1", model="B",
                          state=WorkerState.LOADING), 2.0)
    assert r.get("d0").switching_to == "B" and r.live(WorkerKind.DECODE) == []
    r.heartbeat("d0", WorkerLoad(), 3.0, WorkerState.READY, model="B")
    info = r.get("d0")
    assert (info.model, info.switching_to) == ("B", "")
    assert r.live(WorkerKind.DECODE) == [info]


def test_an_ended_switch_puts_the_worker_back_with_its_model() -> None:
    """end_switch (a refused or failed switch) routes to the worker again, model unchanged."""
    r = WorkerRegistry(10.0)
    r.register(WorkerInfo("p0", WorkerKind.PREFILL, "a:1", model="A"), 0.0)
    r.begin_switch("p0", "B")
    r.end_switch("p0")
    assert [(w.worker_id, w.model) for w in r.live(WorkerKind.PREFILL)] == [("p0", "A")]
