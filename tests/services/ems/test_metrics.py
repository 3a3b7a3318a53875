"""EMS metrics: the client-controlled `namespace` label has bounded cardinality."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from services.ems.metrics import MAX_NAMESPACE_LABELS, OTHER_NAMESPACE, EmsMetrics
from tests.services.ems.conftest import Ems
from tests.services.ems.test_servicer import lookup, prompt_keys


def _namespace_labels(registry: CollectorRegistry, metric: str) -> set[str]:
    return {
        sample.labels["namespace"]
        for family in registry.collect()
        if family.name == metric
        for sample in family.samples
        if "namespace" in sample.labels
    }


def test_namespaces_past_the_cap_share_the_other_label() -> None:
    """The first `max_namespaces` namespaces keep their own label; later ones are counted
    together under `_other`, and a namespace keeps the label it got first."""
    registry = CollectorRegistry()
    metrics = EmsMetrics(registry, max_namespaces=2)
    for namespace in ("a", "b", "c", "d", "a"):
        metrics.count_lookup(namespace, num_queried=4, num_hits=1)
    value = registry.get_sample_value
    assert value("supernode_ems_lookups_total", {"namespace": "a"}) == 2
    assert value("supernode_ems_lookups_total", {"namespace": "b"}) == 1
    assert value("supernode_ems_lookups_total", {"namespace": OTHER_NAMESPACE}) == 2
    assert value("supernode_ems_queried_blocks_total", {"namespace": OTHER_NAMESPACE}) == 8
    assert value("supernode_ems_hit_blocks_total", {"namespace": OTHER_NAMESPACE}) == 2
    assert _namespace_labels(registry, "supernode_ems_lookups") == {"a", "b", OTHER_NAMESPACE}


def test_used_bytes_sums_namespaces_folded_into_other() -> None:
    """Namespaces past the cap are summed into one `_other` gauge, and a label whose
    namespaces no longer hold anything drops to 0 instead of keeping a stale value."""
    registry = CollectorRegistry()
    metrics = EmsMetrics(registry, max_namespaces=1)
    metrics.set_used_bytes({"a": 100, "b": 20, "c": 3})
    value = registry.get_sample_value
    assert value("supernode_ems_used_bytes", {"namespace": "a"}) == 100
    assert value("supernode_ems_used_bytes", {"namespace": OTHER_NAMESPACE}) == 23
    metrics.set_used_bytes({"a": 50})
    assert value("supernode_ems_used_bytes", {"namespace": "a"}) == 50
    assert value("supernode_ems_used_bytes", {"namespace": OTHER_NAMESPACE}) == 0
    assert _namespace_labels(registry, "supernode_ems_used_bytes") == {"a", OTHER_NAMESPACE}


def test_a_negative_cap_is_refused() -> None:
    """max_namespaces must be >= 0 (0 reports every namespace as `_other`)."""
    with pytest.raises(ValueError, match="max_namespaces"):
        EmsMetrics(CollectorRegistry(), max_namespaces=-1)
    metrics = EmsMetrics(CollectorRegistry(), max_namespaces=0)
    assert metrics.namespace_label("a") == OTHER_NAMESPACE


async def test_a_served_replica_exports_at_most_the_cap_plus_other(start_ems) -> None:
    """Over gRPC, lookups in more namespaces than the cap export MAX_NAMESPACE_LABELS own
    labels plus `_other`, which counts every lookup past them."""
    ems: Ems = await start_ems(backend="memory")
    num_extra = 6
    for index in range(MAX_NAMESPACE_LABELS + num_extra):
        await lookup(ems, f"tenant-{index}", prompt_keys(1, f"tenant-{index}"))
    labels = _namespace_labels(ems.registry, "supernode_ems_lookups")
    assert len(labels) == MAX_NAMESPACE_LABELS + 1 and OTHER_NAMESPACE in labels
    assert ems.sample("supernode_ems_lookups_total", namespace=OTHER_NAMESPACE) == num_extra
    assert ems.sample("supernode_ems_lookups_total", namespace="tenant-0") == 1
