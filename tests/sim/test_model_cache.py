"""`supernode sim models`: the model-caching experiment follows the load pricing."""

from __future__ import annotations

import json

import pytest

from supernode.sim import cli
from supernode.sim.model_cache import run_scenario


@pytest.fixture(scope="module")
def figures() -> dict[str, dict]:
    result = run_scenario({}, None, num_instances=4, num_models=3, num_switches=3)
    return {r["cache"]: r for r in result["results"]}


def test_ems_starts_cold_far_sooner_than_obs_and_caches_warm_faster_than_cold(figures) -> None:
    """Cold start: one prefetch into EMS beats every instance reading the shared bucket; no
    cache and the local DRAM cache both read OBS cold. Warm start: DRAM and EMS beat their
    cold start; with no cache a warm start is a cold one."""
    none, dram, ems = figures["none"], figures["dram"], figures["ems"]
    assert ems["cold_start_s"] < none["cold_start_s"] / 1.5
    assert dram["cold_start_s"] == pytest.approx(none["cold_start_s"])
    assert none["warm_start_s"] == pytest.approx(none["cold_start_s"])
    assert dram["warm_start_s"] < dram["cold_start_s"] / 100
    assert ems["warm_start_s"] < ems["cold_start_s"] / 100


def test_switch_latency_orders_ems_before_dram_and_none(figures) -> None:
    """Every request asked for an unheld model: one prefill and one decode switch each. EMS
    holds every model; a node's DRAM keeps only the model its instance loaded (the default
    one), so the DRAM cache switches from OBS like no cache."""
    none, dram, ems = figures["none"], figures["dram"], figures["ems"]
    for r in figures.values():
        assert r["num_switches"] == 6
    assert ems["switch_sources"] == {"ems": 6}
    assert none["switch_sources"] == dram["switch_sources"] == {"obs": 6}
    assert ems["switch_s"] < dram["switch_s"] / 100
    assert dram["switch_s"] == pytest.approx(none["switch_s"])


def test_a_node_dram_keeping_every_model_makes_switches_back_local() -> None:
    """With model_load.dram_cache_models large enough, an instance switching back to a model
    it held before reads its nodes' DRAM, and the mean switch falls."""
    base = {"model_load.dram_cache_models": 3}
    small = run_scenario({}, None, 2, 3, 6, caches=("dram",))["results"][0]
    large = run_scenario(base, None, 2, 3, 6, caches=("dram",))["results"][0]
    assert large["switch_sources"].get("dram", 0) > 0
    assert large["switch_s"] < small["switch_s"]


def test_the_cli_prints_json_and_names_a_bad_flag(capsys) -> None:
    """`supernode sim models --json` prints one object with every cache's figures; a model
    count every instance would hold is refused naming --models."""
    assert cli.main(["models", "--instances", "2", "--models", "2", "--switches", "1",
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["cache"] for r in result["results"]] == ["none", "dram", "ems"]
    for key in ("cold_start_s", "warm_start_s", "switch_s", "switch_max_s", "num_switches",
                "switch_sources"):
        assert key in result["results"][0]
    with pytest.raises(SystemExit) as e:
        cli.main(["models", "--instances", "4", "--models", "2"])
    assert e.value.code == 2
    assert "--models" in capsys.readouterr().err
