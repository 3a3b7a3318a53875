"""The model-caching experiment (paper s4.4.3; calibration notes s7.3) in the simulator.

For each cache choice, three runs of the simulated deployment (`SimCluster`: the same lifecycle,
loads and switches as the live services):

- **cold start**: `num_instances` instances (half prefill, half decode) start at once and load
  the primary model; nothing holds it but OBS. No cache ('none') and the local DRAM cache
  ('dram') read OBS, all sharing the bucket; with EMS ('ems'), EMS prefetches each image once
  from OBS (`model_load.prefetch`) and the instances read it from the pool;
- **warm start**: the same start with the model already where the cache keeps it: nowhere
  ('none': OBS again), each node's host DRAM ('dram'), the EMS pool ('ems');
- **switching**: the same instances serve `num_models` models (versions of the primary
  model's profile, so every switch moves the same bytes), instance i of each pool holding
  model i mod M; once every instance is ready, `num_switches` requests arrive one after
  another, each for a model chosen at random (seeded) among those no instance holds, so each
  makes one prefill and one decode instance switch (`scheduler.switch_policy`). A switch's
  latency is its decision to the instance being ready with the new model. With 'dram' a
  node's DRAM keeps the models its instance loaded (`model_load.dram_cache_models`), with
  'ems' the pool keeps every model (sized to hold them all unless `cache.capacity_bytes` is
  set).
Seconds are model seconds; every figure follows from the config's hardware profile and the
pricing of `supernode.perf.load`, shared bandwidth included.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from supernode.config import ClusterConfig, load_config
from supernode.deployment import (
    ServedModel,
    check_deployment,
    instance_deployment,
    served_models,
)
from supernode.lifecycle.models import POOLS, SwitchDone
from supernode.lifecycle.request import Request
from supernode.perf.load import model_image
from supernode.sim.driver import Observer, RequestSent, SimCluster
from supernode.sim.kernel import EventLoop, Scheduled

CACHES = ("none", "dram", "ems")
PROMPT_TOKENS = 128
OUTPUT_TOKENS = 2

# model_load settings per cache choice: (cold start, warm start and switching)
_LOADS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "none": ({"source": "obs", "cache_in_ems": False, "prefetch": False},
             {"source": "obs", "cache_in_ems": False, "prefetch": False}),
    "dram": ({"source": "obs", "cache_in_ems": False, "prefetch": False},
             {"source": "dram", "cache_in_ems": False, "prefetch": False}),
    "ems": ({"source": "obs", "cache_in_ems": True, "prefetch": True},
            {"source": "ems", "cache_in_ems": True, "prefetch": False}),
}


@dataclass(frozen=True)
class CacheResult:
    """One cache choice's figures (model seconds)."""

    cache: str
    cold_start_s: float
    warm_start_s: float
    switch_s: float
    """Mean over every instance switch: from the decision to ready."""
    switch_max_s: float
    num_switches: int
    switch_sources: dict[str, int]
    """How many switches loaded from each tier."""


class _Run(Observer):
    """Records loads and switches; sends the switch trials one after another."""

    def __init__(self, cluster_size: int, trials: Iterator[int] | None = None) -> None:
        self.cluster: SimCluster | None = None
        self.cluster_size = cluster_size
        self.trials = trials
        self.rng = random.Random(0)
        self.started: set[str] = set()
        self.ready_at = 0.0
        self.switches: list[tuple[SwitchDone, str]] = []
        self.errors: list[str] = []

    def on_first_token(self, request: Request, now: float) -> None:
        return None

    def on_step(self, step, num_tokens: int) -> None:
        return None

    def on_model_loaded(self, worker_id: str, model: ServedModel, source: str,
                        started_at: float, now: float) -> None:
        if worker_id in self.started:
            return
        self.started.add(worker_id)
        self.ready_at = max(self.ready_at, now)
        if len(self.started) == self.cluster_size and self.trials is not None:
            assert self.cluster is not None
            self.cluster.schedule_soon(self._next_trial(now))

    def on_switch_done(self, done: SwitchDone, source: str) -> None:
        self.switches.append((done, source))

    def on_done(self, request: Request, now: float) -> Iterator[Scheduled]:
        if request.error:
            self.errors.append(request.error)
            return
        event = self._next_trial(now)
        if event is not None:
            yield event

    def _next_trial(self, now: float) -> Scheduled | None:
        """A request for a model no instance holds, or None when the trials are over."""
        index = next(self.trials, None) if self.trials is not None else None
        if index is None:
            return None
        assert self.cluster is not None
        stage = self.cluster.lifecycle.models
        workers = [w for kind in POOLS for w in self.cluster.registry.registered(kind)]
        held = {stage.model_of(w) for w in workers} | {w.switching_to for w in workers}
        unheld = sorted(set(stage.models) - held)
        model = self.rng.choice(unheld)
        return now, RequestSent(Request(f"switch-{index}", PROMPT_TOKENS, OUTPUT_TOKENS,
                                        seed=index, arrived_at=now, ignore_eos=True,
                                        model=model))


def scenario_config(base: dict[str, Any], config_path: str | None, cache: str, warm: bool,
                    num_instances: int, num_models: int) -> ClusterConfig:
    """The deployment of one run: `base` (--set overrides) with the scenario's pools, models
    and the cache choice's `model_load`."""
    config = load_config(config_path, base)
    models = [config.model] + [f"{config.model}@m{i}" for i in range(2, num_models + 1)]
    overrides: dict[str, Any] = {
        **base, "num_prefill": num_instances // 2, "num_decode": num_instances - num_instances // 2,
        "served_models": models if num_models > 1 else [],
        **{f"model_load.{k}": v for k, v in _LOADS[cache][1 if warm else 0].items()}}
    overrides.setdefault("scheduler.model_wait_s", 1e9)
    if "cache.capacity_bytes" not in base:
        probe = load_config(config_path, {**overrides, "cache.capacity_bytes": 1})
        overrides["cache.capacity_bytes"] = config.cache.capacity_bytes + _images_bytes(probe)
    config = load_config(config_path, overrides)
    check_deployment(config)
    return config


def _images_bytes(config: ClusterConfig) -> int:
    """True bytes of every served model's images (prefill's and decode's)."""
    return round(sum(model_image(instance_deployment(config, kind.value, m.profile)).model_bytes
                     for m in served_models(config) for kind in POOLS))


def _simulate(config: ClusterConfig, observer: _Run) -> None:
    cluster = SimCluster(config, observer)
    observer.cluster = cluster
    loop = EventLoop(cluster.handlers())
    for event in cluster.start():
        loop.schedule(*event)
    loop.run()


def start_time(config: ClusterConfig) -> float:
    """Model seconds until every instance of `config` is ready."""
    run = _Run(config.num_prefill + config.num_decode)
    _simulate(config, run)
    return run.ready_at


def switch_trials(config: ClusterConfig, num_switches: int, seed: int
                  ) -> list[tuple[SwitchDone, str]]:
    """Every instance switch of `num_switches` requests for unheld models, in turn."""
    run = _Run(config.num_prefill + config.num_decode, iter(range(num_switches)))
    run.rng = random.Random(seed)
    _simulate(config, run)
    if run.errors:
        raise RuntimeError(f"switch trial failed: {run.errors[0]}")
    return run.switches


def run_cache(base: dict[str, Any], config_path: str | None, cache: str, num_instances: int,
              num_models: int, num_switches: int, seed: int) -> CacheResult:
    """The three runs of one cache choice."""
    cold = start_time(scenario_config(base, config_path, cache, False, num_instances, 1))
    warm = start_time(scenario_config(base, config_path, cache, True, num_instances, 1))
    config = scenario_config(base, config_path, cache, True, num_instances, num_models)
    switches = switch_trials(config, num_switches, seed)
    seconds = [done.seconds for done, _ in switches]
    return CacheResult(cache, cold, warm, sum(seconds) / len(seconds), max(seconds),
                       len(seconds), dict(Counter(source for _, source in switches)))


def run_scenario(base: dict[str, Any], config_path: str | None, num_instances: int = 8,
                 num_models: int = 8, num_switches: int = 8, seed: int = 0,
                 caches: tuple[str, ...] = CACHES) -> dict[str, Any]:
    """The experiment for every cache choice: one JSON-ready object."""
    per_pool = num_instances - num_instances // 2
    if num_instances < 2:
        raise ValueError("--instances must be >= 2 (one prefill and one decode instance)")
    if num_models <= per_pool:
        raise ValueError(f"--models must exceed the instances per pool ({per_pool}): with "
                         f"{num_models} models every one is held and nothing switches")
    if num_switches < 1:
        raise ValueError("--switches must be >= 1")
    for cache in caches:
        if cache not in CACHES:
            raise ValueError(f"unknown cache {cache!r}; expected some of {', '.join(CACHES)}")
    config = scenario_config(base, config_path, "none", True, num_instances, num_models)
    results = [run_cache(base, config_path, c, num_instances, num_models, num_switches, seed)
               for c in caches]
    return {
        "model": config.model, "hardware": config.hardware,
        "num_instances": num_instances, "num_prefill": config.num_prefill,
        "num_decode": config.num_decode, "num_models": num_models,
        "num_switches_requested": num_switches, "seed": seed,
        "switch_policy": config.scheduler.switch_policy,
        "prefill_devices": config.prefill.num_devices,
        "decode_devices": config.decode.num_devices,
        "results": [asdict(r) for r in results],
    }

