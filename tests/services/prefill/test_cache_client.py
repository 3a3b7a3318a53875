"""Prefill's EMS client against a real gRPC EMS that an injected fault makes unreachable: the
circuit breaker stops paying timeouts, probes in the background, and closes on recovery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import CollectorRegistry

from services.ems.fault_gate import GatedEmsServicer
from services.ems.servicer import build_servicer
from services.prefill.cache_client import PrefixCacheClient
from services.prefill.metrics import PrefillMetrics
from supernode.config import CacheConfig
from supernode.hardware import load_hardware
from supernode.v1 import supernode_pb2_grpc as pb_grpc

BLOCK = 4
PROMPT = list(range(4 * BLOCK + 1))


@dataclass
class Rig:
    client: PrefixCacheClient
    gate: GatedEmsServicer
    ems_registry: CollectorRegistry
    metrics: PrefillMetrics
    registry: CollectorRegistry
    clock: list[float]

    def sample(self, name: str, **labels: str) -> float:
        labels = {**self.metrics.labels, **labels}
        return self.registry.get_sample_value(name, labels) or 0.0

    def calls_reaching_ems(self) -> float:
        """EMS calls the gate refused or swallowed (each one reached the EMS process)."""
        return sum(s.value for m in self.ems_registry.collect() for s in m.samples
                   if s.name == "supernode_ems_fault_refused_calls_total")


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    ems_registry = CollectorRegistry()
    gate = GatedEmsServicer(build_servicer(backend="memory", capacity_bytes=10**9,
                                           registry=ems_registry), ems_registry)
    server = grpc.aio.server()
    pb_grpc.add_EmsServiceServicer_to_server(gate, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    registry = CollectorRegistry()
    metrics = PrefillMetrics(registry, "m", "prefill-0")
    clock = [100.0]
    config = CacheConfig(block_size=BLOCK, lookup_timeout_s=0.2, breaker_failure_threshold=2,
                         breaker_open_s=1.0, breaker_max_open_s=8.0)
    client = PrefixCacheClient(f"127.0.0.1:{port}", config, 10, 1.0, metrics,
                               load_hardware("ascend-910c").link("ems_ub"),
                               now=lambda: clock[0])
    yield Rig(client, gate, ems_registry, metrics, registry, clock)
    await client.close()
    await server.stop(grace=None)
    await gate.inner.close()


async def test_breaker_opens_on_a_frozen_ems_probes_in_the_background_and_closes(rig: Rig
                                                                                ) -> None:
    """A blackholed EMS costs the first `breaker_failure_threshold` lookups their timeout and
    opens the breaker; then lookups skip EMS without calling it; after the open time one
    background probe fails (open again, twice as long); once EMS answers, the next probe
    closes the breaker and the cached prefix is served again."""
    c = rig.client
    warm = await c.fetch("ns", PROMPT)
    c.store_later("ns", warm, len(PROMPT))
    await c.flush()
    assert (await c.fetch("ns", PROMPT)).num_cached_blocks == 4

    rig.gate.set_mode("blackhole")
    for _ in range(2):
        assert (await c.fetch("ns", PROMPT)).num_cached_blocks == 0
    assert c.breaker.state.value == "open"
    assert rig.sample("supernode_cache_breaker_state", state="open") == 1
    reached = rig.calls_reaching_ems()
    for _ in range(5):
        assert (await c.fetch("ns", PROMPT)).num_cached_blocks == 0
    assert rig.calls_reaching_ems() == reached  # open: EMS was not called at all
    assert rig.sample("supernode_cache_skipped_total") == 5

    rig.clock[0] += 1.0
    assert (await c.fetch("ns", PROMPT)).num_cached_blocks == 0  # the probe is not awaited
    assert c.breaker.state.value == "half_open"
    await c.flush()
    assert c.breaker.state.value == "open" and c.breaker.open_s == 2.0
    assert rig.calls_reaching_ems() == reached + 1

    rig.gate.set_mode(None)
    rig.clock[0] += 2.0
    await c.fetch("ns", PROMPT)
    await c.flush()
    assert c.breaker.state.value == "closed"
    assert rig.sample("supernode_cache_breaker_transitions_total", to="closed") == 1
    assert (await c.fetch("ns", PROMPT)).num_cached_blocks == 4


async def test_refused_calls_open_the_breaker_too(rig: Rig) -> None:
    """An EMS that refuses at once (mode refuse) opens the breaker after the same count."""
    rig.gate.set_mode("refuse")
    for _ in range(2):
        await rig.client.fetch("ns", PROMPT)
    assert rig.client.breaker.state.value == "open"
    assert rig.sample("supernode_cache_errors_total", op="lookup") == 2
