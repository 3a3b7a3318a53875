"""Typed config: defaults, overrides, validation naming the bad key."""

import pytest

from supernode.config import ClusterConfig, load_config
from supernode.deployment import served_models


def test_default_is_the_paper_deployment() -> None:
    """The embedded default: 16-NPU EP32 prefill, 160-NPU DP320/EP320 decode with MTP."""
    c = ClusterConfig()
    assert (c.prefill.num_devices, c.prefill.ep) == (16, 32)
    assert (c.decode.num_devices, c.decode.dp, c.decode.ep, c.decode.mtp_tokens) == (160, 320, 320, 1)


def test_dotted_overrides_apply_to_nested_fields(tmp_path) -> None:
    """A YAML file and --set style overrides combine; untouched fields keep defaults."""
    path = tmp_path / "c.yaml"
    path.write_text("speedup: 0.5\ndecode:\n  mtp_tokens: 0\n")
    c = load_config(path, {"cache.block_size": 256})
    assert c.speedup == 0.5 and c.decode.mtp_tokens == 0 and c.decode.num_devices == 160
    assert c.cache.block_size == 256


@pytest.mark.parametrize("overrides, message", [
    ({"decode.nonsense": 1}, "decode.nonsense"),
    ({"speedup": 0}, "speedup"),
    ({"decode.mtp_acceptance": 1.5}, "mtp_acceptance"),
    ({"cache.backend": "redis"}, "redis_url"),
    ({"model_load.source": "nfs"}, "model_load.source"),
    ({"model_load.version": "v1/x"}, "model_load.version"),
    ({"model_load.source": "ems", "model_load.cache_in_ems": False}, "cache_in_ems"),
    ({"model_load.source": "obs", "kv_payload_scale": 0.1}, "model_load.block_bytes"),
    ({"model_load.dram_cache_models": 0}, "dram_cache_models"),
    ({"model_load.prefetch": True, "model_load.cache_in_ems": False}, "prefetch"),
    ({"scheduler.model_wait_s": -1}, "model_wait_s"),
    ({"served_models": "deepseek-r1"}, "served_models must be a list"),
    ({"served_models": ["deepseek-r1", "deepseek-r1"]}, "duplicates"),
    ({"served_models": ["deepseek-r1@v/1"]}, "profile\\[@version\\]"),
    ({"served_models": ["qwen3-235b-a22b"]}, "must include the model 'deepseek-r1'"),
    ({"served_models": ["deepseek-r1", "x"], "served_model_name": "ds"}, "served_model_name"),
])
def test_bad_values_are_refused_with_their_name(overrides, message) -> None:
    """Unknown keys and out-of-range values raise ValueError naming them."""
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_model_load_is_skipped_unless_asked() -> None:
    """By default workers model no load (ready at once); a source turns it on."""
    assert not load_config().model_load.enabled
    c = load_config(None, {"model_load.source": "dram", "model_load.version": "2025-06"})
    assert c.model_load.enabled and c.model_load.version == "2025-06"
    assert c.model_load.cache_in_ems and c.model_load.block_bytes == 1 << 30


def test_served_models_default_to_the_primary_model() -> None:
    """Without served_models the deployment serves `model` under its served name, at
    model_load.version; with them, each entry as written, its version defaulting likewise."""
    assert [(m.name, m.model_id) for m in served_models(load_config())] == [
        ("deepseek-r1", "deepseek-r1@v1")]
    named = load_config(None, {"served_model_name": "ds"})
    assert named.model_name == "ds" and served_models(named)[0].name == "ds"
    c = load_config(None, {"served_models": ["deepseek-r1@v2", "deepseek-r1"],
                           "model_load.version": "v7"})
    assert [(m.name, m.model_id) for m in served_models(c)] == [
        ("deepseek-r1@v2", "deepseek-r1@v2"), ("deepseek-r1", "deepseek-r1@v7")]
    assert c.model_name == "deepseek-r1@v2"  # the first entry of the primary profile
