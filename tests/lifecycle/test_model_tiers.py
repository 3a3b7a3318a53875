"""Where model images are: EMS (one pool, LRU by bytes), each instance's nodes' DRAM."""

from __future__ import annotations

from supernode.config import load_config
from supernode.deployment import instance_deployment
from supernode.engine.registry import WorkerKind, WorkerRegistry
from supernode.lifecycle.model_tiers import ModelTiers, image_key, load_source
from supernode.lifecycle.models import ModelStage
from supernode.perf.load import model_image

GB = 10**9


def test_a_load_reads_ems_first_then_the_nodes_dram_then_obs() -> None:
    """The source rule shared by the live EMS and the simulator."""
    assert load_source(True, True) == "ems"
    assert load_source(False, True) == "dram"
    assert load_source(False, False) == "obs"


def test_ems_keeps_the_most_recently_loaded_images_within_its_capacity() -> None:
    """A new image evicts the least recently loaded ones while over capacity; a load of a
    cached image makes it the most recent; an image larger than the pool is never kept."""
    tiers = ModelTiers(load_config(None, {"cache.capacity_bytes": 25 * GB}))
    tiers.put_ems("a", 10 * GB)
    tiers.put_ems("b", 10 * GB)
    tiers.put_ems("a", 10 * GB)  # loaded again: now the most recent
    tiers.put_ems("c", 10 * GB)
    assert (tiers.in_ems("a"), tiers.in_ems("b"), tiers.in_ems("c")) == (True, False, True)
    tiers.put_ems("huge", 30 * GB)
    assert not tiers.in_ems("huge") and tiers.in_ems("a")
    off = ModelTiers(load_config(None, {"model_load.cache_in_ems": False}))
    off.put_ems("a", 1)
    assert not off.in_ems("a")


def test_a_nodes_dram_keeps_its_instances_last_models_with_the_local_dram_cache_only() -> None:
    """With source 'dram' an instance's nodes keep its last dram_cache_models images; without
    the local DRAM cache they keep none."""
    tiers = ModelTiers(load_config(None, {"model_load.source": "dram",
                                          "model_load.dram_cache_models": 2}))
    for key in ("a", "b", "c"):
        tiers.put_dram("decode-0", key)
    assert [tiers.in_dram("decode-0", k) for k in "abc"] == [False, True, True]
    assert tiers.source("decode-1", "c") == "obs" and tiers.source("decode-0", "c") == "dram"
    none = ModelTiers(load_config(None, {"model_load.source": "obs"}))
    none.put_dram("decode-0", "a")
    assert not none.in_dram("decode-0", "a")


def test_a_load_leaves_its_image_in_ems_when_it_fits() -> None:
    """on_loaded: EMS holds the image afterwards if the pool can hold it."""
    config = load_config(None, {"cache.capacity_bytes": 2 * 10**12})
    d = instance_deployment(config, "decode")
    tiers = ModelTiers(config)
    tiers.on_loaded("decode-0", d, "v1")
    assert tiers.in_ems(image_key(d, "v1"))
    assert image_key(d, "v1") == "deepseek-r1@v1/int8+mtp"
    small = ModelTiers(load_config(None, {}))  # 64 GiB: smaller than the model
    small.on_loaded("decode-0", d, "v1")
    assert not small.in_ems(image_key(d, "v1")) and model_image(d).model_bytes > 64 * 2**30


def test_the_run_starts_with_what_model_load_source_says() -> None:
    """'ems' seeds every served image (prefill's and decode's) into EMS; 'dram' puts each
    instance's first model in its nodes' DRAM."""
    models = ["deepseek-r1", "deepseek-r1@v2"]
    ems = load_config(None, {"served_models": models, "model_load.source": "ems",
                             "cache.capacity_bytes": 4 * 10**12})
    stage = ModelStage(ems, WorkerRegistry(1.0), lambda r, t: None, lambda s, t: None)
    stage.seed({})
    keys = {"deepseek-r1@v1/int8", "deepseek-r1@v1/int8+mtp", "deepseek-r1@v2/int8",
            "deepseek-r1@v2/int8+mtp"}
    assert all(stage.tiers.in_ems(k) for k in keys)
    dram = load_config(None, {"served_models": models, "model_load.source": "dram"})
    stage = ModelStage(dram, WorkerRegistry(1.0), lambda r, t: None, lambda s, t: None)
    stage.seed({"decode-1": (WorkerKind.DECODE, "deepseek-r1@v2")})
    assert stage.tiers.in_dram("decode-1", "deepseek-r1@v2/int8+mtp")
    assert not stage.tiers.in_ems("deepseek-r1@v2/int8+mtp")
