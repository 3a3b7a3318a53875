"""Typed config: defaults, overrides, validation naming the bad key."""

import pytest

from supernode.config import ClusterConfig, load_config


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
])
def test_bad_values_are_refused_with_their_name(overrides, message) -> None:
    """Unknown keys and out-of-range values raise ValueError naming them."""
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)
