"""A worker's start-up: load the model's weights as the real instance would, then serve.

With `model_load.source: skip` the worker reports no state (it is ready at once, as before).
Otherwise it registers as `loading` and runs one load:

- through EMS when it knows EMS's address: `LoadModel` picks the source (EMS if the image is
  cached there, else the nodes' DRAM when the source is 'dram', else OBS), paces the load on
  EMS's clock while sharing the source with every other load through it, streams EMS blocks
  (their checksums are verified here) and warms EMS for the next instance;
- without EMS (none given, or not reachable within `EMS_WAIT_S`): from DRAM ('dram') or OBS,
  priced alone by `supernode.perf.load` and waited on the worker's own clock (logged: nothing
  is known about other loads, so none is shared).

A block that fails its checksum, or an EMS read cut short, loads again without EMS; an EMS
that goes away mid-load is asked again (the load starts over), `MAX_ATTEMPTS` times in all.
Then the worker reports `ready` (`Registrar.set_state`), which puts it into routing. While it
loads, its gRPC health service says NOT_SERVING, so orchestrators' readiness probes (Kubernetes,
compose healthchecks) see what routing sees. A model switch (services.common.model_switch) loads
its new model the same way (`switch`), whatever `model_load.source` says about start-up.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from prometheus_client import CollectorRegistry, Gauge

from services.common.grpc_server import GrpcServer, insecure_channel
from services.common.registration import Registrar
from services.common.shape import instance_shape
from services.common.vllm_metrics import LABELS
from supernode.cache.payload import checksum
from supernode.clock import Clock
from supernode.config import ClusterConfig
from supernode.deployment import ServedModel
from supernode.perf import Deployment
from supernode.perf.load import SOURCES, load_time
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

EMS_WAIT_S = 10.0
"""Wall seconds a starting worker waits for EMS to answer before loading without it."""
MAX_ATTEMPTS = 3
STATES = {pb.WORKER_STATE_LOADING: "loading", pb.WORKER_STATE_READY: "ready"}


class ModelLoadSeries:
    """A worker's start-up series: its state and its modelled load time."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self.labels = labels
        self.state = Gauge("supernode_worker_state",
                           "1 for the worker's current state (loading, ready), else 0.",
                           (*LABELS, "state"), registry=registry)
        self.load_seconds = Gauge("supernode_model_load_seconds",
                                  "Modelled seconds the worker spent loading its model from "
                                  "each source (0 for a source it did not load from).",
                                  (*LABELS, "source"), registry=registry)
        self.load_lag_seconds = Gauge("supernode_model_load_lag_seconds",
                                      "Model seconds the emulator ran behind the modelled load.",
                                      LABELS, registry=registry)
        self.set_state("ready")
        for source in SOURCES:
            self.load_seconds.labels(**labels, source=source)
        self.load_lag_seconds.labels(**labels)

    def set_state(self, state: str) -> None:
        for name in STATES.values():
            self.state.labels(**self.labels, state=name).set(1 if name == state else 0)


class _RetryWithoutEms(Exception):
    """The EMS read went wrong (bad block, or cut short): load again from another tier."""


class ModelLoader:
    """Runs one worker's model load and reports its state through a `Registrar`."""

    def __init__(self, config: ClusterConfig, deployment: Deployment, worker_id: str,
                 ems_address: str | None, clock: Clock, series: ModelLoadSeries,
                 ems_wait_s: float = EMS_WAIT_S, cluster_token: str | None = None,
                 model: ServedModel | None = None) -> None:
        """`model`: the served model the worker starts with (default: the primary model at
        `model_load.version`); `deployment` is an instance holding it."""
        self.config = config
        self.cluster_token = cluster_token
        self.ems_wait_s = ems_wait_s
        self.deployment = deployment
        self.worker_id = worker_id
        self.ems_address = ems_address
        self.clock = clock
        self.series = series
        self.model = model or ServedModel(config.model_name, deployment.model.name,
                                          config.model_load.version)
        self._task: asyncio.Task[None] | None = None

    def start(self, registrar: Registrar, server: GrpcServer | None = None) -> None:
        """Set the registration's state (call before the registrar starts), then load; the
        `server`'s health service is NOT_SERVING until the load is over."""
        if not self.config.model_load.enabled:
            return
        self.series.set_state("loading")
        registrar.set_state(pb.WORKER_STATE_LOADING,
                            pb.ModelLoadStatus(model_id=self.model.model_id))
        self._task = asyncio.create_task(self._run(registrar, server), name="model-load")

    async def wait(self) -> None:
        """Until the load is over (at once when there is none)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, registrar: Registrar, server: GrpcServer | None) -> None:
        if server is not None:
            await server.set_serving(False)
        await self._load(registrar, self.deployment, self.model,
                         self.config.model_load.source == "dram")
        if server is not None:
            await server.set_serving(True)

    async def switch(self, registrar: Registrar, deployment: Deployment, model: ServedModel,
                     local_dram: bool) -> None:
        """Load `model` onto the instance (now of `deployment`) for a switch, then report
        ready with it; `local_dram`: the instance's nodes hold it in host DRAM."""
        self.deployment, self.model = deployment, model
        self.series.set_state("loading")
        await self._load(registrar, deployment, model, local_dram)

    async def _load(self, registrar: Registrar, d: Deployment, model: ServedModel,
                    local_dram: bool) -> None:
        def on_plan(source: str, estimated_s: float) -> None:
            log.info("loading %s from %s: %.1f model seconds expected", model.model_id, source,
                     estimated_s)
            registrar.set_state(pb.WORKER_STATE_LOADING,
                                self._status(model, source, estimated_s))

        done = (await self._load_via_ems(d, model, local_dram, on_plan) if self.ems_address
                else None)
        if done is None:
            done = await self._load_alone(d, model, local_dram, on_plan)
        source, estimated_s, load_s, lag_s = done
        log.info("loaded %s from %s in %.1f model seconds (%.1f behind); ready",
                 model.model_id, source, load_s, lag_s)
        self.series.load_seconds.labels(**self.series.labels, source=source).set(load_s)
        self.series.load_lag_seconds.labels(**self.series.labels).set(lag_s)
        self.series.set_state("ready")
        registrar.set_state(pb.WORKER_STATE_READY,
                            self._status(model, source, estimated_s, load_s))

    @staticmethod
    def _status(model: ServedModel, source: str, estimated_s: float, load_s: float = 0.0
                ) -> pb.ModelLoadStatus:
        return pb.ModelLoadStatus(model_id=model.model_id, source=source,
                                  estimated_s=estimated_s, load_s=load_s)

    async def _load_via_ems(self, d: Deployment, model: ServedModel, local_dram: bool,
                            on_plan) -> tuple[str, float, float, float] | None:
        """(source, estimated_s, load_s, lag_s) of a load through EMS; None if EMS cannot."""
        assert self.ems_address is not None
        exclude_ems = False
        async with insecure_channel(self.ems_address, self.cluster_token) as channel:
            try:
                await asyncio.wait_for(channel.channel_ready(), self.ems_wait_s)
            except TimeoutError:
                log.warning("EMS %s did not answer within %.0fs: loading without it",
                            self.ems_address, self.ems_wait_s)
                return None
            stub = pb_grpc.EmsServiceStub(channel)
            for attempt in range(MAX_ATTEMPTS):
                try:
                    return await self._one_ems_load(stub, d, model, local_dram, exclude_ems,
                                                    on_plan)
                except _RetryWithoutEms as e:
                    log.warning("model load through EMS failed (%s); again without EMS", e)
                    exclude_ems = True
                except grpc.aio.AioRpcError as e:
                    log.warning("model load through EMS failed (%s: %s); attempt %d of %d",
                                e.code().name, e.details(), attempt + 1, MAX_ATTEMPTS)
                    if e.code() == grpc.StatusCode.ABORTED:
                        exclude_ems = True
                    else:
                        await asyncio.sleep(0.5)
        log.warning("model load through EMS failed %d times: loading without it", MAX_ATTEMPTS)
        return None

    async def _one_ems_load(self, stub: pb_grpc.EmsServiceStub, d: Deployment,
                            model: ServedModel, local_dram: bool, exclude_ems: bool, on_plan
                            ) -> tuple[str, float, float, float]:
        request = pb.LoadModelRequest(
            shape=instance_shape(d), version=model.version, worker_id=self.worker_id,
            local_dram=local_dram, exclude_ems=exclude_ems, plane=self.config.cache.plane)
        plan: pb.ModelLoadPlan | None = None
        num_blocks = 0
        async for event in stub.LoadModel(request):
            kind = event.WhichOneof("event")
            if kind == "plan":
                plan = event.plan
                on_plan(plan.source, plan.estimated_s)
            elif kind == "block":
                if checksum(event.block.payload) != event.block.crc32:
                    raise _RetryWithoutEms(f"block {num_blocks} failed its checksum")
                num_blocks += 1
            elif kind == "done" and plan is not None:
                if num_blocks < plan.num_blocks:
                    raise _RetryWithoutEms(f"{num_blocks} of {plan.num_blocks} blocks arrived")
                return plan.source, plan.estimated_s, event.done.load_s, event.done.lag_s
        raise _RetryWithoutEms("the load stream ended without finishing")

    async def _load_alone(self, d: Deployment, model: ServedModel, local_dram: bool,
                          on_plan) -> tuple[str, float, float, float]:
        source = "dram" if local_dram else "obs"
        timing = load_time(d, source, 1, plane=self.config.cache.plane)
        log.warning("loading %s from %s without EMS: priced alone (no sharing with other "
                    "loads is known)", model.model_id, source)
        on_plan(source, timing.total_s)
        started = self.clock.now()
        await self.clock.sleep_until(started + timing.total_s)
        return (source, timing.total_s, timing.total_s,
                max(0.0, self.clock.now() - started - timing.total_s))
