"""Worker registry: registration, heartbeats, lease expiry."""

from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerLoad, WorkerRegistry


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
