"""Model profiles: parameter counts and KV sizes derived from public configs."""

import pytest

from supernode.models import available_models, load_model


def test_deepseek_kv_bytes():
    """MLA caches 512 + 64 elements per layer: 70,272 B/token in BF16 over 61 layers."""
    m = load_model("deepseek-r1")
    assert m.kv_bytes_per_token() == 70_272
    assert m.kv_bytes_per_token("int8") == 35_136


def test_deepseek_parameter_counts():
    """671B total, ~37B activated, ~11.5B in the MTP module (DSV3 README_WEIGHTS)."""
    m = load_model("deepseek-r1")
    assert m.total_params == pytest.approx(671e9, rel=0.01)
    assert m.activated_params_per_token == pytest.approx(37e9, rel=0.03)
    assert m.mtp_layer_params == pytest.approx(11.5e9, rel=0.02)
    assert (m.num_layers, m.num_dense_layers, m.num_moe_layers) == (61, 3, 58)


@pytest.mark.parametrize("name,total,active,kv", [
    ("llama-3.1-70b", 70.6e9, 70.6e9, 2 * 8 * 128 * 2 * 80),
    ("qwen3-235b-a22b", 235e9, 22e9, 2 * 4 * 128 * 2 * 94),
])
def test_other_models(name, total, active, kv):
    """The dense GQA and the GQA MoE model match their published sizes; GQA caches K and V."""
    m = load_model(name)
    assert m.total_params == pytest.approx(total, rel=0.02)
    assert m.activated_params_per_token == pytest.approx(active, rel=0.03)
    assert m.kv_bytes_per_token() == kv


def test_unknown_dtype_and_model_raise():
    """Unknown names are rejected with the name in the message."""
    with pytest.raises(ValueError, match="fp4"):
        load_model("deepseek-r1").kv_bytes_per_token("fp4")
    with pytest.raises(ValueError, match="gpt-9"):
        load_model("gpt-9")


def test_all_models_have_context_and_vocab():
    """Every profile states a maximum context and a vocabulary size."""
    for name in available_models():
        m = load_model(name)
        assert m.max_context_len > 0 and m.vocab_size > 0
