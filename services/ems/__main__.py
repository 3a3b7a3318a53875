"""`python -m services.ems`: one EMS replica (the prefix-cache pool) over memory or Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from services.common.faults import FaultHooks, WorkerFaults
from services.common.grpc_server import GrpcServer, start_grpc_server
from services.common.metrics_http import serve_metrics
from services.common.registration import Registrar
from services.common.worker_main import (
    base_parser,
    config_from_args,
    credentials_from_flags,
    default_worker_id,
    run_service,
)
from services.ems.fault_gate import GatedEmsServicer
from services.ems.metrics import EmsMetrics
from services.ems.models import ModelCacheSettings, ModelService
from services.ems.servicer import EmsServicer
from supernode.cache.backends import StoreConfig, make_store
from supernode.cache.models import ModelCatalog
from supernode.cache.store import StoreUnavailable
from supernode.clock import WallClock
from supernode.config import CacheConfig, ClusterConfig
from supernode.deployment import instance_deployment, served_models
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

GAUGE_REFRESH_S = 1.0
_log = logging.getLogger(__name__)


@dataclass
class EmsProcess:
    servicer: EmsServicer
    grpc: GrpcServer
    registrar: Registrar | None
    refresher: asyncio.Task[None]
    metrics_server: object

    async def stop(self) -> None:
        if self.registrar:
            await self.registrar.leave()
        self.refresher.cancel()
        await self.grpc.stop()
        await self.servicer.close()
        self.metrics_server.shutdown()  # type: ignore[attr-defined]


def store_config(cache: CacheConfig) -> StoreConfig:
    return StoreConfig(
        backend=cache.backend,
        capacity_bytes=cache.capacity_bytes,
        namespace_capacity_bytes=cache.namespace_capacity_bytes or None,
        redis_url=cache.redis_url,
    )


def build_ems(config: ClusterConfig, store_cfg: StoreConfig,
              registry: CollectorRegistry) -> EmsServicer:
    """The servicer over a new store, its model cache paced at the config's speedup."""
    store, metrics = make_store(store_cfg), EmsMetrics(registry)
    settings = ModelCacheSettings.from_config(config)
    models = ModelService(ModelCatalog(store, settings.payload_scale), metrics,
                          WallClock(config.speedup), settings)
    return EmsServicer(store, metrics, models)


async def seed_models(servicer: EmsServicer, config: ClusterConfig) -> None:
    """With `model_load.source: ems` the pool holds every served model when the run starts;
    with `model_load.prefetch`, EMS starts fetching each from OBS."""
    load = config.model_load
    if load.source != "ems" and not load.prefetch:
        return
    for model in served_models(config):
        deployments = [instance_deployment(config, role, model.profile)
                       for role in ("prefill", "decode")]
        try:
            if load.source == "ems":
                await servicer.models.seed(deployments, model.version)
            else:
                await servicer.models.prefetch_all(deployments, model.version)
        except StoreUnavailable as e:
            _log.warning("could not put %s into EMS (loads will read OBS): %s", model.name, e)


async def _refresh_forever(servicer: EmsServicer, server: GrpcServer) -> None:
    """Refresh the pool gauges, and report NOT_SERVING on the health service while the
    backend (Redis) is down, so probes and orchestrators see what prefill sees."""
    serving = True
    while True:
        with contextlib.suppress(Exception):  # a down backend is reported by the RPCs
            await servicer.refresh_gauges()
        if servicer.backend_available != serving:
            serving = servicer.backend_available
            await server.set_serving(serving)
        await asyncio.sleep(GAUGE_REFRESH_S)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("ems")
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="HOST:PORT",
        help="register with this scheduler (optional)",
    )
    parser.add_argument("--worker-id", default=None)
    parser.add_argument("--redis-url", default=None, help="use Redis (overrides the config)")
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    token = credentials_from_flags(args, parser).cluster_token
    cache = config.cache
    try:
        if args.redis_url:
            cache = CacheConfig(
                **{**cache.__dict__, "backend": "redis", "redis_url": args.redis_url}
            )
        store_cfg = store_config(cache)
    except ValueError as e:
        parser.error(f"cache: {e}")
    worker_id = args.worker_id or default_worker_id("ems")

    async def start() -> EmsProcess:
        registry = CollectorRegistry()
        servicer = build_ems(config, store_cfg, registry)
        await seed_models(servicer, config)
        gated = GatedEmsServicer(servicer, registry)
        server = await start_grpc_server(
            [lambda s: pb_grpc.add_EmsServiceServicer_to_server(gated, s)], args.host, args.port,
            token,
        )
        metrics_server, metrics_port = serve_metrics(registry, args.host, args.metrics_port)
        refresher = asyncio.create_task(_refresh_forever(servicer, server))
        registrar = None
        if args.scheduler:
            host = args.advertise_host or args.host
            registrar = Registrar(
                args.scheduler,
                pb.RegisterRequest(
                    worker_id=worker_id,
                    kind=pb.WORKER_KIND_EMS,
                    address=f"{host}:{server.port}",
                    metrics_address=f"{host}:{metrics_port}",
                ),
                pb.Load,
                on_faults=WorkerFaults(
                    registry, worker_id, FaultHooks(ems_unreachable=gated.set_mode)
                ).update,
                cluster_token=token,
            )
            registrar.start()
        return EmsProcess(servicer, server, registrar, refresher, metrics_server)

    return run_service(f"ems[{worker_id}]", args.log_level, start)


if __name__ == "__main__":
    sys.exit(main())
