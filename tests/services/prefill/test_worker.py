"""The prefill worker's batch loop on the modelled clock."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from services.prefill.kv_sender import KvSender
from services.prefill.metrics import PrefillMetrics
from services.prefill.worker import PrefillWorker
from supernode.clock import WallClock
from supernode.config import ClusterConfig
from supernode.deployment import instance_deployment, prefill_token_budget
from supernode.engine.prefill import PrefillEngine, PrefillJob
from supernode.lifecycle.prefill import PrefillInstance


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
