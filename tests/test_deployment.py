"""From a config to instances: the memory check that `supernode up` and `sim` enforce."""

import pytest

from supernode.config import load_config
from supernode.deployment import (
    check_deployment,
    check_memory,
    instance_deployment,
    overcommit_message,
    pool_nodes,
)

TINY_DECODE = {"decode.num_devices": 2, "decode.dp": 4, "decode.ep": 4}


def test_the_default_deployment_fits():
    """One 16-NPU prefill and one 160-NPU decode instance of DeepSeek-R1 hold weights and KV."""
    assert check_memory(load_config()) == []


def test_a_too_small_instance_is_named_with_need_and_capacity():
    """DeepSeek-R1 on 2 NPUs cannot hold its weights: the problem names the decode instance,
    what one die needs and the 64 GiB it has."""
    (problem,) = check_memory(load_config(None, TINY_DECODE))
    assert problem.startswith("decode instance (2 x ascend-910c")
    assert "GiB of HBM per die" in problem and "weights" in problem and "64 GiB" in problem


def test_minimum_kv_counts_not_only_weights():
    """An instance whose weights fit but that cannot hold one maximum-length request's KV per
    DP group is refused too (vLLM's start-up rule)."""
    config = load_config(None, {"decode.num_devices": 16, "decode.dp": 32, "decode.ep": 32,
                                "decode.quant": "bf16"})
    problems = check_memory(config)
    assert problems and "KV for 163,840 tokens" in problems[0]


def test_overcommit_message_says_how_to_run_anyway():
    """The refusal lists every problem and names the flag and the config key."""
    text = overcommit_message(["a", "b"])
    assert "  - a" in text and "  - b" in text
    assert "--allow-overcommit" in text and "allow_overcommit: true" in text


def test_cache_settings_reach_the_prefill_pricing():
    """The cache block size and the pool (every node of the deployment) reach the model."""
    config = load_config(None, {"cache.block_size": 256, "num_prefill": 2})
    d = instance_deployment(config, "prefill")
    assert d.kv_block_tokens == 256
    assert d.ems_pool_nodes == pool_nodes(config) == (2 * 16 + 160) // 8


def test_allow_overcommit_is_a_config_field():
    """`allow_overcommit` is a config field, off by default, settable from YAML or --set."""
    assert load_config().allow_overcommit is False
    assert load_config(None, {"allow_overcommit": True}).allow_overcommit is True


def test_every_served_model_must_fit_the_instance_shapes():
    """check_deployment names a served model the instances cannot run, and check_memory
    checks each served profile (and an unknown switch policy is refused)."""
    with pytest.raises(ValueError, match=r"served model 'llama-3\.1-70b' on the prefill"):
        check_deployment(load_config(None, {"served_models": ["deepseek-r1", "llama-3.1-70b"]}))
    with pytest.raises(ValueError, match="switch policy"):
        check_deployment(load_config(None, {"scheduler.switch_policy": "fifo"}))
    small = {"model": "qwen3-235b-a22b", "decode.mtp_tokens": 0, "prefill.num_devices": 8,
             "prefill.dp": 16, "prefill.ep": 16}
    assert check_memory(load_config(None, small)) == []
    both = load_config(None, {**small, "served_models": ["qwen3-235b-a22b", "deepseek-r1"]})
    check_deployment(both)
    (problem,) = check_memory(both)
    assert problem.startswith("prefill instance holding deepseek-r1 (8 x ascend-910c")
