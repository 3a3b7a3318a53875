"""`supernode up`'s configuration of model loading: the flag, and what the banner says."""

from __future__ import annotations

from services.up.banner import model_load_banner
from services.up.cli import build_parser, resolve_config
from supernode.config import load_config


def test_model_load_flag_sets_the_config_field() -> None:
    """--model-load sets model_load.source; without it the default (skip) holds."""
    parser = build_parser()
    config = resolve_config(parser.parse_args(["--model-load", "ems"]), parser)
    assert config.model_load.source == "ems"
    assert resolve_config(parser.parse_args([]), parser).model_load.source == "skip"


def test_the_banner_says_when_loading_is_skipped() -> None:
    """skip: the banner says workers are ready at once and how to model loads."""
    line = model_load_banner(load_config())
    assert "skipped" in line and "--model-load" in line


def test_the_banner_prices_a_load_and_warns_when_ems_cannot_hold_the_model() -> None:
    """obs: the banner gives the modelled load time alone (model and wall seconds at the
    speedup), and warns when the pool is smaller than the model."""
    small = model_load_banner(load_config(None, {"model_load.source": "obs", "speedup": 10.0}))
    assert "from obs" in small and "will not be cached" in small
    model_s = float(small.split("alone: ")[1].split(" model s")[0].replace(",", ""))
    wall_s = float(small.split("model s, ")[1].split(" wall s")[0].replace(",", ""))
    assert model_s > 200 and abs(wall_s - model_s / 10) <= 0.1
    big = model_load_banner(load_config(None, {"model_load.source": "obs",
                                               "cache.capacity_bytes": 2 * 10**12}))
    assert "will not be cached" not in big
