"""The shipped deployment presets load, fit their hardware and price work sensibly."""

from pathlib import Path

import pytest

from supernode.config import load_config
from supernode.deployment import instance_deployment
from supernode.perf import (
    DecodeBatch,
    PrefillBatch,
    decode_step_time,
    kv_capacity_tokens,
    prefill_time,
)

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "configs").glob("*.yaml"))


def test_presets_exist() -> None:
    """Ascend, H800, H100, a second MoE and a dense model each have a preset."""
    assert {p.stem for p in CONFIGS} >= {"cloudmatrix-paper", "deepseek-h800", "sglang-h100",
                                         "qwen3-ascend", "llama70b-ascend"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_preset_builds_both_instances_with_room_for_kv(path: Path) -> None:
    """Every preset is a valid config whose instances hold the weights with KV room to spare,
    and whose prefill and decode times are finite and grow with the work."""
    config = load_config(path)
    prefill, decode = instance_deployment(config, "prefill"), instance_deployment(config, "decode")
    assert kv_capacity_tokens(decode) > 64 * 8192
    assert not any("memory" in note for note in
                   decode_step_time(DecodeBatch(64, 4096), decode).notes)
    short = prefill_time(PrefillBatch((1024,)), prefill).total_s
    long = prefill_time(PrefillBatch((8192,)), prefill).total_s
    assert 0 < short < long
    assert 0 < decode_step_time(DecodeBatch(8, 4096), decode).total_s < decode_step_time(
        DecodeBatch(512, 4096), decode).total_s
