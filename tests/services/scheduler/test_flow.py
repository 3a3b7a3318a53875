"""The request flow's bookkeeping: a refused admission never leaks an in-flight count."""

import pytest
from prometheus_client import CollectorRegistry

from services.scheduler.flow import RequestFlow
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.token_streams import TokenStreams
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry
from supernode.engine.request import RequestRecord
from supernode.policy import make_policy


async def test_a_message_the_proto_rejects_does_not_leak_an_inflight_count() -> None:
    """A request whose Admit message cannot be built (a seed outside uint64, as seed -1 once
    reached it) fails before it is counted against the decode worker: its num_inflight stays
    0 (it used to grow by one per such request, forever)."""
    registry = WorkerRegistry(lease_s=10.0)
    decode = WorkerInfo("decode-0", WorkerKind.DECODE, "127.0.0.1:1", kv_capacity_tokens=10**6)
    registry.register(decode, now_s=0.0)
    streams = TokenStreams("test")
    flow = RequestFlow(registry, streams, make_policy("least-loaded"),
                       make_policy("least-loaded"),
                       SchedulerMetrics(CollectorRegistry(), "m", 1000))
    record = RequestRecord("r1", [1, 2, 3], max_tokens=4, seed=-1, ignore_eos=False,
                           cache_namespace="m/", arrived_at=0.0)
    streams.connect(decode.worker_id, decode.address).ready.set()  # as if its stream were up
    with pytest.raises(ValueError):
        await flow._try_admit(record, decode)
    assert registry.get("decode-0").num_inflight == 0
    await streams.close()
