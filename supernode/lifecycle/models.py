"""Several served models on the shared pools: who holds which, who switches, who waits.

Every instance holds one served model (`WorkerInfo.model`); instance i of each pool starts with
served model i mod M (`initial_model`). A request names a served model and is routed only to
instances holding it (`Router`). Before each pool it needs (decode admission, then prefill) the
lifecycle asks `ModelStage.wait_for`:

  a ready instance of the pool holds the model -> go on;
  none does -> the request waits in the (model, pool) line, FIFO. Unless a switch to the model
    is under way in the pool, the switch policy (`scheduler.switch_policy`) picks an instance
    to switch (`ModelSwitch`, carried out by the driver through `on_switch`): it leaves
    routing at once (`WorkerRegistry.begin_switch`), drains what was already routed to it,
    loads the model from the tier that holds it (`model_tiers.load_source`: EMS, else its
    nodes' DRAM, else OBS; priced by `supernode.perf.load.switch_time` and paced like every
    load), and registers ready with it. The driver reports every change of a worker
    (`on_worker_update`): when an instance of the pool is ready with the model, everyone
    waiting for it there is woken (`on_turn`) and goes on.
  A refused or lost switch (`on_switch_failed`, or the worker gone) lets another instance take
  it. A request waits at most `scheduler.model_wait_s` in all (then 503) and never past its
  own deadline (408).

A request joins the line of every pool lacking its model when it is accepted, so the loads of
both pools overlap, and stays in a pool's line until it is routed there (`on_routed`) or goes
to wait for decode room (`left`). Candidates for a switch are the pool's routable instances
holding another model, except the last holder of a model that requests still wait for (in any
pool's line): a switch never takes a model from the requests that are about to use it. An instance whose switch was refused is not asked again for
`scheduler.admission_backoff_max_s`. With one served model nothing here runs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from supernode.config import ClusterConfig
from supernode.deployment import ServedModel, instance_deployment, served_models
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry, WorkerState
from supernode.lifecycle.errors import RequestFailed, UnknownModel
from supernode.lifecycle.model_tiers import ModelTiers, image_key
from supernode.lifecycle.request import Request
from supernode.lifecycle.switching import make_switch_policy
from supernode.perf import Deployment, kv_capacity_tokens
from supernode.perf.load import model_image, switch_time

POOLS = (WorkerKind.PREFILL, WorkerKind.DECODE)


def initial_model(config: ClusterConfig, index: int) -> ServedModel:
    """The served model instance `index` of a pool starts with: round-robin by index."""
    models = served_models(config)
    return models[index % len(models)]


@dataclass(frozen=True)
class ModelSwitch:
    """One instance told to switch models (maps onto SwitchModelRequest). `source` and
    `estimated_s` are the lifecycle's expectation when it decided: the load alone from the
    tier that held the model then."""

    worker_id: str
    kind: WorkerKind
    from_model: str
    to: ServedModel
    source: str
    local_dram: bool
    """The instance's nodes hold the new model in host DRAM."""
    estimated_s: float
    decided_at: float


@dataclass(frozen=True)
class SwitchDone:
    """A switch that ended with the instance ready with its new model."""

    switch: ModelSwitch
    ready_at: float

    @property
    def seconds(self) -> float:
        """From the decision to ready: the drain, then the load (model seconds)."""
        return self.ready_at - self.switch.decided_at


class ModelStage:
    """The served models, the (model, pool) lines and the switches under way."""

    def __init__(self, config: ClusterConfig, registry: WorkerRegistry,
                 on_turn: Callable[[Request, float], None],
                 on_switch: Callable[[ModelSwitch, float], None]) -> None:
        self.config = config
        self.registry = registry
        self.on_turn = on_turn
        self.on_switch = on_switch
        self.models = {m.name: m for m in served_models(config)}
        self.primary = self.models[config.model_name]
        self.single = len(self.models) == 1
        self.policy = make_switch_policy(config.scheduler.switch_policy)
        self.tiers = ModelTiers(config)
        self.switches: dict[str, ModelSwitch] = {}
        """Switches under way, by worker id."""
        self.lines: dict[tuple[str, WorkerKind], OrderedDict[str, Request]] = {}
        self.last_routed_at: dict[str, float] = {}
        self._refused_until: dict[str, float] = {}
        self._ready_with: dict[str, str] = {}  # worker id -> the model it was last seen ready with
        self._deployments: dict[tuple[WorkerKind, str], Deployment] = {}

    # ---- models and instances
    def model(self, name: str) -> ServedModel:
        """The served model called `name` ("" is the primary); UnknownModel if none."""
        if not name:
            return self.primary
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModel(name) from None

    def model_of(self, worker: WorkerInfo) -> str:
        """The served model a worker holds (one that did not say holds the primary)."""
        return worker.model or self.primary.name

    def holders(self, model: str, kind: WorkerKind) -> list[WorkerInfo]:
        """Routable instances of `kind` holding `model`."""
        workers = self.registry.live(kind)
        if self.single:
            return workers
        return [w for w in workers if self.model_of(w) == model]

    def deployment(self, kind: WorkerKind, profile: str) -> Deployment:
        """An instance of pool `kind` holding model profile `profile`."""
        key = (kind, profile)
        if key not in self._deployments:
            self._deployments[key] = instance_deployment(self.config, kind.value, profile)
        return self._deployments[key]

    def kv_capacity_tokens(self, model: str) -> int:
        """KV tokens a decode instance holding `model` has room for."""
        return kv_capacity_tokens(self.deployment(WorkerKind.DECODE, self.model(model).profile))

    def seed(self, initial: dict[str, tuple[WorkerKind, str]]) -> None:
        """What the tiers hold when the run starts (`model_tiers`): `initial` maps each
        instance to its pool and first model."""
        source = self.config.model_load.source
        if source == "ems":
            for model in self.models.values():
                for kind in POOLS:
                    d = self.deployment(kind, model.profile)
                    self.tiers.put_ems(image_key(d, model.version), model_image(d).model_bytes)
        if source == "dram":
            for worker_id, (kind, name) in initial.items():
                model = self.models[name]
                self.tiers.put_dram(worker_id,
                                    image_key(self.deployment(kind, model.profile),
                                              model.version))

    # ---- requests
    def on_accepted(self, request: Request, needs_decode: bool, now: float) -> None:
        """Join the line of every pool the request needs that lacks its model, and start the
        switches they need at once (so both pools load together)."""
        if self.single:
            return
        request.model_deadline = now + self.config.scheduler.model_wait_s
        for kind in POOLS if needs_decode else (WorkerKind.PREFILL,):
            if not self.holders(request.model, kind):
                self.lines.setdefault((request.model, kind), OrderedDict())[
                    request.request_id] = request
                self._want(request.model, kind, now)

    def wait_for(self, request: Request, kind: WorkerKind, now: float) -> float | None:
        """None when a routable instance of `kind` holds the request's model (it stays in that
        line, keeping the model there, until routed); else the model time to wake at unless
        woken first (`on_turn`). Each wait is a new `request.admission_epoch`. Raises
        RequestFailed past `scheduler.model_wait_s`."""
        if self.single:
            return None
        key = (request.model, kind)
        if self.holders(request.model, kind):
            request.waiting_for_model = None
            self.lines.setdefault(key, OrderedDict())[request.request_id] = request
            return None
        if now >= request.model_deadline:
            raise RequestFailed(f"no {kind.value} instance switched to model "
                                f"{request.model!r} within scheduler.model_wait_s="
                                f"{self.config.scheduler.model_wait_s:g} s")
        self.lines.setdefault(key, OrderedDict())[request.request_id] = request
        request.waiting_for_model = kind
        request.admission_epoch += 1
        self._want(request.model, kind, now)
        wake_at = min(request.model_deadline, request.deadline_at)
        if not self._switching_to(request.model, kind):
            # Nobody could switch now. Every worker update and every emptied line tries
            # again; only the end of a refused instance's pause needs a look of its own.
            pauses = [t for t in self._refused_until.values() if t > now]
            wake_at = min([wake_at, *pauses])
        return wake_at

    def on_routed(self, request: Request, worker: WorkerInfo, now: float) -> None:
        """The request was routed to `worker`: it no longer waits for the model there."""
        self.last_routed_at[worker.worker_id] = now
        if not self.single:
            self._leave(request, (request.model, worker.kind), now)

    def left(self, request: Request, kind: WorkerKind, now: float) -> None:
        """The request waits for something else before pool `kind` (decode room): it holds
        no instance's model meanwhile."""
        if not self.single:
            self._leave(request, (request.model, kind), now)

    def forget(self, request: Request, now: float) -> None:
        """The request is over: out of every line."""
        if self.single:
            return
        request.waiting_for_model = None
        for kind in POOLS:
            self._leave(request, (request.model, kind), now)

    @property
    def num_waiting(self) -> int:
        """Requests waiting for a switch (each counted once)."""
        return len({r for line in self.lines.values() for r in line})

    # ---- instances
    def on_worker_update(self, worker_id: str, now: float) -> SwitchDone | None:
        """A worker registered, changed state or model, or left. Wakes whoever waits for the
        model it is now ready with; returns the switch it completed, if any."""
        info = self.registry.get(worker_id)
        switch = self.switches.get(worker_id)
        if info is None:
            self._ready_with.pop(worker_id, None)
            if switch is not None:
                self.on_switch_failed(worker_id, now)
            return None
        model = self.model_of(info)
        if info.state is not WorkerState.READY or self._ready_with.get(worker_id) == model:
            if info.state is not WorkerState.READY:
                self._ready_with.pop(worker_id, None)
            return None
        self._ready_with[worker_id] = model
        if info.model_load is not None or switch is not None:  # a load was modelled
            served = self.model(model)
            self.tiers.on_loaded(worker_id, self.deployment(info.kind, served.profile),
                                 served.version)
        done = None
        if switch is not None and model == switch.to.name and not info.switching_to:
            del self.switches[worker_id]
            done = SwitchDone(switch, now)
        for request in list(self.lines.get((model, info.kind), {}).values()):
            if request.waiting_for_model is info.kind:
                self.on_turn(request, now)
        self._retry(now)
        return done

    def on_switch_failed(self, worker_id: str, now: float) -> ModelSwitch | None:
        """The switch will not happen (refused, failed, worker gone): the instance is routed
        again with the model it holds, and another may switch instead."""
        switch = self.switches.pop(worker_id, None)
        if switch is None:
            return None
        self.registry.end_switch(worker_id)
        self._refused_until[worker_id] = now + self.config.scheduler.admission_backoff_max_s
        self._retry(now)
        return switch

    # ---- switching
    def _want(self, model: str, kind: WorkerKind, now: float) -> None:
        """Start a switch to `model` in pool `kind` unless an instance there holds it, one is
        on its way to it, or none can switch."""
        if self._switching_to(model, kind) or self.holders(model, kind):
            return
        candidates = [w for w in self.registry.live(kind)
                      if self.model_of(w) != model and not self._pinned(w)
                      and self._refused_until.get(w.worker_id, float("-inf")) <= now]
        if candidates:
            self._begin(self.policy.choose(candidates, self.last_routed_at), model, now)

    def _begin(self, worker: WorkerInfo, model: str, now: float) -> None:
        served = self.models[model]
        d = self.deployment(worker.kind, served.profile)
        key = image_key(d, served.version)
        source = self.tiers.source(worker.worker_id, key)
        switch = ModelSwitch(worker.worker_id, worker.kind, self.model_of(worker), served,
                             source, self.tiers.in_dram(worker.worker_id, key),
                             switch_time(d, source, plane=self.config.cache.plane).total_s, now)
        self.registry.begin_switch(worker.worker_id, model)
        self.switches[worker.worker_id] = switch
        self.on_switch(switch, now)

    def _switching_to(self, model: str, kind: WorkerKind) -> bool:
        return any(s.kind is kind and s.to.name == model for s in self.switches.values())

    def _pinned(self, worker: WorkerInfo) -> bool:
        """The last routable holder of a model that requests wait for keeps it."""
        model = self.model_of(worker)
        if not any(self.lines.get((model, kind)) for kind in POOLS):
            return False
        return len(self.holders(model, worker.kind)) <= 1

    def _leave(self, request: Request, key: tuple[str, WorkerKind], now: float) -> None:
        line = self.lines.get(key)
        if line is None or line.pop(request.request_id, None) is None:
            return
        if not line:
            del self.lines[key]
            self._retry(now)  # a model no longer waited for may be switched away

    def _retry(self, now: float) -> None:
        """Lines still without a switch try again, oldest first."""
        for model, kind in list(self.lines):
            if (model, kind) in self.lines:
                self._want(model, kind, now)

