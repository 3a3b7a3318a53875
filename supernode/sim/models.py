"""The simulator's side of several served models: instances hold models, load them, switch.

What the live workers do (services/common/model_loading.py, model_switch.py), in events:

- at the start, instance i of each pool holds served model i mod M (`initial_model`); with
  `model_load.source` other than 'skip' it registers `loading` and loads it (`SimLoads`, paced
  as EMS paces loads; with `model_load.prefetch`, EMS first prefetches every served image);
- a switch the lifecycle orders (`on_switch`): the instance is already out of routing; once
  what was routed to it is done (`after_work` sees it idle), it becomes an instance of the new
  model (its engine rebuilt for the model's shape), registers `loading`, loads the model from
  the tier that holds it, and registers ready with it (`LoadDone`), which the lifecycle hears
  (`on_worker_update`) and wakes whoever waits for the model.
The observer hears every finished load (`on_model_loaded`) and switch (`on_switch_done`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from supernode.deployment import ServedModel, build_decode_engine, prefill_token_budget
from supernode.engine.prefill import PrefillEngine
from supernode.engine.registry import ModelLoadInfo, WorkerInfo, WorkerKind, WorkerState
from supernode.lifecycle.cache import cache_source
from supernode.lifecycle.decode import DecodeInstance
from supernode.lifecycle.models import POOLS, ModelSwitch, initial_model
from supernode.lifecycle.prefill import PrefillInstance
from supernode.sim.kernel import Scheduled
from supernode.sim.loads import LoadCheck, LoadDone, PrefetchDone, SimLoads

if TYPE_CHECKING:
    from supernode.sim.driver import SimCluster


@dataclass(frozen=True, slots=True)
class SwitchOrdered:
    """The lifecycle told `worker_id` to switch models."""

    worker_id: str


class SimModels:
    """Which model each instance holds, its loads and its switches."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.config = cluster.config
        self.stage = cluster.lifecycle.models
        self.loads = SimLoads(self.config, self.stage.tiers)
        self.held: dict[str, ServedModel] = {}
        self.switching: dict[str, ModelSwitch] = {}
        self.loading: dict[str, float] = {}
        """Instances loading now: when each load began."""

    def handlers(self) -> dict[type, object]:
        return {LoadCheck: self.loads.on_check, PrefetchDone: self.loads.on_prefetched,
                LoadDone: self.on_load_done, SwitchOrdered: self.on_switch_ordered}

    # ---- instances
    def first_model(self, index: int) -> ServedModel:
        return initial_model(self.config, index)

    def new_prefill(self, model: ServedModel) -> PrefillInstance:
        d = self.stage.deployment(WorkerKind.PREFILL, model.profile)
        return PrefillInstance(PrefillEngine(prefill_token_budget(self.config, d)), d,
                               cache_source(self.config))

    def new_decode(self, model: ServedModel) -> DecodeInstance:
        d = self.stage.deployment(WorkerKind.DECODE, model.profile)
        return DecodeInstance(build_decode_engine(self.config, d), d)

    def register(self, worker_id: str, model: ServedModel, loading: bool) -> None:
        """What the instance's registration says: its shape, its model, ready or loading."""
        self.held[worker_id] = model
        load = ModelLoadInfo(model.model_id) if loading else None
        self.cluster.registry.register(dataclasses.replace(
            self.instance_info(worker_id), model=model.name, model_load=load,
            state=WorkerState.LOADING if loading else WorkerState.READY), 0.0)

    def kind_of(self, worker_id: str) -> WorkerKind:
        return WorkerKind.PREFILL if worker_id in self.cluster.prefills else WorkerKind.DECODE

    def instance_info(self, worker_id: str) -> WorkerInfo:
        """How the instance registers (its shape and capacity)."""
        c = self.cluster
        if worker_id in c.prefills:
            return c.prefills[worker_id].instance.info(worker_id, "sim")
        return c.decodes[worker_id].info(worker_id, "sim")

    def is_idle(self, worker_id: str) -> bool:
        """Nothing routed to the instance is left there (its switch may begin)."""
        c = self.cluster
        info = c.registry.get(worker_id)
        if info is None or info.num_inflight:
            return False
        if worker_id in c.prefills:
            instance = c.prefills[worker_id].instance
            return instance.batch is None and not instance.engine.waiting
        decode = c.decodes[worker_id]
        return (decode.step is None and decode.engine.num_running == 0
                and decode.engine.num_waiting == 0 and decode.num_arriving == 0)

    def replace_instance(self, worker_id: str, model: ServedModel) -> None:
        """The idle instance becomes an instance of `model` (its engine sized for it)."""
        c = self.cluster
        if worker_id in c.prefills:
            c.prefills[worker_id].instance = self.new_prefill(model)
        else:
            c.decodes[worker_id] = self.new_decode(model)

    def start(self, now: float) -> Iterator[Scheduled]:
        """The run begins: EMS prefetches (`model_load.prefetch`), every instance loads its
        first model (unless loads are skipped)."""
        config = self.config
        self.stage.seed({w: (self.kind_of(w), m.name) for w, m in self.held.items()})
        if not config.model_load.enabled:
            return
        if config.model_load.prefetch:
            for model in self.stage.models.values():
                for kind in POOLS:
                    yield from self.loads.prefetch(self.stage.deployment(kind, model.profile),
                                                   model.version, now)
        for worker_id, model in self.held.items():
            yield from self._load(worker_id, model, now)

    # ---- switches
    def on_switch(self, switch: ModelSwitch, now: float) -> None:
        """The lifecycle ordered a switch; it begins once the instance is idle."""
        self.switching[switch.worker_id] = switch
        self.cluster.schedule_soon((now, SwitchOrdered(switch.worker_id)))

    def on_switch_ordered(self, now: float, event: SwitchOrdered) -> Iterator[Scheduled]:
        yield from self.after_work(event.worker_id, now)

    def after_work(self, worker_id: str | None, now: float) -> Iterator[Scheduled]:
        """Work on `worker_id` ended or moved on: a switching instance that is now idle
        becomes its new model's instance and loads it."""
        switch = self.switching.get(worker_id) if worker_id else None
        if switch is None or worker_id in self.loading or not self.is_idle(worker_id):
            return
        info = self.cluster.registry.get(worker_id)
        if info is None:
            return
        self.replace_instance(worker_id, switch.to)
        self.register(worker_id, switch.to, True)
        yield from self._load(worker_id, switch.to, now)

    def _load(self, worker_id: str, model: ServedModel, now: float) -> Iterator[Scheduled]:
        self.loading[worker_id] = now
        d = self.stage.deployment(self.kind_of(worker_id), model.profile)
        yield from self.loads.start(worker_id, d, model.version, now)

    def on_load_done(self, now: float, event: LoadDone) -> Iterator[Scheduled]:
        worker_id = event.worker_id
        started = self.loading.pop(worker_id)
        model = self.held[worker_id]
        self.cluster.registry.heartbeat(
            worker_id, self.cluster.registry.get(worker_id).load, 0.0, WorkerState.READY,
            ModelLoadInfo(model.model_id, event.source, event.estimated_s, event.load_s),
            model.name)
        self.switching.pop(worker_id, None)
        done = self.cluster.lifecycle.on_worker_update(worker_id, now)
        observer = self.cluster.observer
        observer.on_model_loaded(worker_id, model, event.source, started, now)
        if done is not None:
            observer.on_switch_done(done, event.source)
        yield from self.cluster.drain_turns()
