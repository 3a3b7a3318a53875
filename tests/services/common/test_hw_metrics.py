"""The emulated-hardware series: values come from the hardware model, not from the service."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from services.common.hw_metrics import HardwareSeries, moe_tokens_per_die, precreate
from supernode.config import load_config
from supernode.deployment import instance_deployment
from supernode.perf import DecodeBatch, PrefillBatch, decode_step_time, memory_budget, prefill_time
from supernode.perf.experts import expert_load

LABELS = {"model_name": "m", "engine": "e0"}


def make_series(role: str = "decode", **overrides: object):
    registry = CollectorRegistry()
    series = HardwareSeries(registry, LABELS)
    precreate(series, LABELS)
    deployment = instance_deployment(load_config(None, overrides), role)
    series.on_start(deployment, role, 0.5, 128, 1280, prefix_caching=role == "prefill")
    return registry, series, deployment


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {**LABELS, **labels})


def test_start_up_publishes_the_memory_budget_and_cache_config() -> None:
    """HBM by kind is the hardware model's budget of the fullest die; the cache-config info
    metric carries the KV blocks; the speedup is exported for busy-fraction queries."""
    registry, _, deployment = make_series()
    budget = memory_budget(deployment)
    assert value(registry, "supernode_hbm_used_bytes", kind="weights") == budget.weight_bytes
    assert value(registry, "supernode_hbm_used_bytes", kind="kv") == budget.kv_bytes
    assert value(registry, "supernode_hbm_capacity_bytes") == budget.hbm_bytes
    assert value(registry, "supernode_speedup") == 0.5
    assert value(registry, "vllm:cache_config_info", block_size="128", num_gpu_blocks="10",
                 enable_prefix_caching="False", cache_dtype=deployment.kv_dtype,
                 gpu_memory_utilization=f"{1 - deployment.hbm_reserve_fraction:g}") == 1


def test_a_decode_step_records_parts_ub_busy_time_and_expert_imbalance() -> None:
    """A decode step adds its modelled time to the busy and per-part counters and dispatch + combine
    to UB busy time, and sets imbalance and utilisation from the model."""
    registry, series, deployment = make_series()
    timing = decode_step_time(DecodeBatch(64, 2000), deployment)
    series.on_step(timing)
    assert value(registry, "supernode_busy_seconds_total") == pytest.approx(timing.total_s)
    assert value(registry, "supernode_step_part_seconds_total", part="dispatch") == \
        pytest.approx(timing.breakdown["dispatch"])
    ub = timing.breakdown["dispatch"] + timing.breakdown["combine"]
    assert value(registry, "supernode_link_busy_seconds_total", plane="ub") == pytest.approx(ub)
    load = expert_load(deployment, moe_tokens_per_die(deployment, "decode", timing))
    assert value(registry, "supernode_expert_imbalance") == pytest.approx(load.imbalance)
    assert value(registry, "supernode_expert_imbalance") >= 1
    assert value(registry, "supernode_compute_utilization") == timing.compute_util


def test_prefill_spreads_computed_tokens_over_every_die() -> None:
    """Prefill's MoE tokens per die are the batch's computed tokens spread over all dies."""
    _, _, deployment = make_series(role="prefill")
    timing = prefill_time(PrefillBatch((4096, 2048)), deployment)
    assert moe_tokens_per_die(deployment, "prefill", timing) == 6144 / deployment.num_dies


def test_dense_models_have_no_expert_imbalance_series() -> None:
    """A dense model exports no expert imbalance series."""
    registry, series, deployment = make_series(**{
        "model": "llama-3.1-70b", "decode.num_devices": 4, "decode.dp": 8, "decode.ep": 1,
        "decode.mtp_tokens": 0})
    series.on_step(decode_step_time(DecodeBatch(8, 1000), deployment))
    assert value(registry, "supernode_expert_imbalance") is None
