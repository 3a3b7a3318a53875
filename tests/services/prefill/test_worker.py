"""The prefill worker's batch loop on the modelled clock."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from services.prefill.cache_client import CacheHit
from services.prefill.kv_sender import KvSender
from services.prefill.metrics import PrefillMetrics
from services.prefill.worker import PrefillWorker
from supernode.clock import WallClock
from supernode.config import ClusterConfig
from supernode.deployment import instance_deployment, prefill_token_budget
from supernode.engine.prefill import PrefillEngine, PrefillJob
from supernode.lifecycle.prefill import PrefillInstance
from supernode.v1 import supernode_pb2 as pb


def make_worker(arrival_grace_s: float) -> PrefillWorker:
    config = ClusterConfig()
    deployment = instance_deployment(config, "prefill")
    instance = PrefillInstance(PrefillEngine(prefill_token_budget(config, deployment)),
                               deployment)
    return PrefillWorker(instance, WallClock(), PrefillMetrics(CollectorRegistry(), "m", "p0"),
                         KvSender("p0", 1e-3, 1 << 20), None, arrival_grace_s=arrival_grace_s)


async def two_jobs(arrival_grace_s: float) -> list[tuple[str, ...]]:
    """Job a arrives; then, once the batch loop has woken for it, job b arrives with the same
    timeline (its RPC was slower). The jobs of a's batch and of b's."""
    worker = make_worker(arrival_grace_s)
    worker.start()
    try:
        now = worker.clock.now()
        a = asyncio.create_task(worker._compute(PrefillJob("a", 512, 0, now)))
        for _ in range(5):  # let the loop wake for a and reach its decision
            await asyncio.sleep(0)
        b = asyncio.create_task(worker._compute(PrefillJob("b", 512, 0, now)))
        (batch_a, _), (batch_b, _) = await asyncio.gather(a, b)
    finally:
        await worker.stop()
    return [tuple(j.request_id for j in batch.jobs) for batch in (batch_a, batch_b)]


async def test_a_request_still_on_its_way_makes_the_batch_its_timeline_puts_it_in() -> None:
    """With a grace, the late job b is packed with a, as in the model's timeline."""
    assert await two_jobs(arrival_grace_s=1.0) == [("a", "b"), ("a", "b")]


async def test_without_a_grace_the_batch_starts_at_once() -> None:
    """The loop packs a alone the moment it wakes; b waits for the next batch."""
    assert await two_jobs(arrival_grace_s=0.0) == [("a",), ("b",)]


class SlowCache:
    """An EMS lookup that takes as long as the test says."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def fetch(self, namespace: str, tokens: list[int]) -> CacheHit:
        await self.release.wait()
        return CacheHit((), 0, 0, 0)


async def test_a_batch_waits_for_the_lookups_of_requests_its_timeline_holds() -> None:
    """Job b arrived with a but its real EMS lookup is still running when a's batch is due:
    without any grace, the batch waits for the lookup and packs both (the lookup's wall time
    is the emulator's; the model prices the fetch in the batch)."""
    worker = make_worker(arrival_grace_s=0.0)
    worker.cache = cache = SlowCache()
    worker.start()
    try:
        now = worker.clock.now()

        async def b_path():
            await worker._look_up(pb.PrefillRequest(request_id="b"), [], now)
            return await worker._compute(PrefillJob("b", 512, 0, now))

        b = asyncio.create_task(b_path())
        await asyncio.sleep(0)  # b's lookup is in flight
        a = asyncio.create_task(worker._compute(PrefillJob("a", 512, 0, now)))
        for _ in range(5):  # the loop wakes for a and reaches its decision
            await asyncio.sleep(0)
        assert worker.instance.batch is None  # held for b's lookup
        cache.release.set()
        (batch_a, _), (batch_b, _) = await asyncio.gather(a, b)
    finally:
        worker.cache = None
        await worker.stop()
    assert [tuple(j.request_id for j in batch.jobs) for batch in (batch_a, batch_b)] == [
        ("a", "b"), ("a", "b")]
