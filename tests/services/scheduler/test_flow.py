"""The request flow's bookkeeping: a refused admission never leaks an in-flight count."""

import pytest
from prometheus_client import CollectorRegistry

from services.scheduler.flow import RequestFlow
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.token_streams import TokenStreams
from supernode.clock import WallClock
from supernode.config import ClusterConfig
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry
from supernode.lifecycle.request import Request
from supernode.lifecycle.scheduler import Lifecycle


async def test_a_message_the_proto_rejects_does_not_leak_an_inflight_count() -> None:
    """A request whose Admit message cannot be built (a seed outside uint64, as seed -1 once
    reached it) fails before any RPC, and the decode worker it was counted against gets the
    count back: its num_inflight stays 0 (it used to grow by one per such request, forever)."""
    registry = WorkerRegistry(lease_s=10.0)
    for kind in WorkerKind:
        registry.register(WorkerInfo(f"{kind.value}-0", kind, "127.0.0.1:1",
                                     kv_capacity_tokens=10**6), now_s=0.0)
    streams = TokenStreams("test")
    clock = WallClock(1.0)
    flow = RequestFlow(Lifecycle(ClusterConfig(), registry), streams, clock,
                       SchedulerMetrics(CollectorRegistry(), "m", 1000))
    request = Request("r1", 3, max_tokens=4, seed=-1, arrived_at=clock.now(),
                      cache_namespace="m/", prompt_token_ids=[1, 2, 3], output_token_ids=[])
    flow.accept(request)
    streams.connect("decode-0", "127.0.0.1:1").ready.set()  # as if its stream were up
    with pytest.raises(ValueError):
        await flow._admit(request)
    assert registry.get("decode-0").num_inflight == 0
    await streams.close()
