"""`python -m services.prefill`: one prefill instance (see services.prefill.worker)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from services.common.faults import FaultHooks
from services.common.model_loading import ModelLoader
from services.common.model_switch import ModelSwitcher, SwitchHooks
from services.common.shape import instance_shape
from services.common.worker_main import (
    WorkerHooks,
    WorkerProcess,
    add_worker_flags,
    base_parser,
    config_from_args,
    credentials_from_flags,
    default_worker_id,
    run_service,
    serve_worker,
    start_model,
)
from services.prefill.cache_client import PrefixCache, PrefixCacheClient
from services.prefill.kv_sender import KvSender
from services.prefill.local_cache import LocalPrefixCache
from services.prefill.metrics import PrefillMetrics
from services.prefill.servicer import PrefillServicer
from services.prefill.worker import PrefillWorker
from supernode.clock import WallClock
from supernode.config import ClusterConfig
from supernode.deployment import instance_deployment, prefill_token_budget
from supernode.engine.prefill import PrefillEngine
from supernode.hardware.degrade import degrade_links
from supernode.lifecycle.cache import cache_source
from supernode.lifecycle.prefill import PrefillInstance
from supernode.perf import Deployment, kv_capacity_tokens
from supernode.policy.kv_affinity import uses_local_cache
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc


def build_cache(config: ClusterConfig, deployment: Deployment, ems_address: str | None,
                metrics: PrefillMetrics, cluster_token: str | None = None
                ) -> PrefixCache | None:
    """The shared EMS (p2p and the other policies), a local cache (kv-affinity), or none."""
    if not config.cache.enabled:
        return None
    kv_bytes_per_token = deployment.model.kv_bytes_per_token(deployment.kv_dtype)
    if uses_local_cache(config.routing_policy):
        return LocalPrefixCache(config.cache, config.cache.capacity_bytes // config.num_prefill,
                                kv_bytes_per_token, config.kv_payload_scale, metrics)
    if not ems_address:
        return None
    link = deployment.hardware.link(f"ems_{config.cache.plane}")
    return PrefixCacheClient(ems_address, config.cache, kv_bytes_per_token,
                             config.kv_payload_scale, metrics, link, cluster_token)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("prefill")
    add_worker_flags(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    token = credentials_from_flags(args, parser).cluster_token
    worker_id = args.worker_id or default_worker_id("prefill")
    model = start_model(config, args, parser)
    try:
        deployment = instance_deployment(config, "prefill", model.profile)
    except ValueError as e:
        parser.error(f"prefill instance: {e}")

    async def start() -> WorkerProcess:
        budget = prefill_token_budget(config, deployment)
        registry = CollectorRegistry()
        metrics = PrefillMetrics(registry, model.name, worker_id)
        metrics.hw.on_start(deployment, "prefill", config.speedup, config.cache.block_size,
                            kv_capacity_tokens(deployment), config.cache.enabled)
        cache = build_cache(config, deployment, args.ems, metrics, token)
        sender = KvSender(worker_id, config.kv_payload_scale, config.kv_chunk_bytes, token)
        instance = PrefillInstance(PrefillEngine(budget), deployment, cache_source(config))
        worker = PrefillWorker(instance, WallClock(config.speedup), metrics, sender, cache,
                               delivery_lead_s=config.delivery_lead_s,
                               arrival_grace_s=config.arrival_grace_s)
        worker.start()

        def registration(address: str, metrics_address: str) -> pb.RegisterRequest:
            return pb.RegisterRequest(
                worker_id=worker_id, kind=pb.WORKER_KIND_PREFILL, address=address,
                shape=instance_shape(deployment), metrics_address=metrics_address,
                capacity=pb.Capacity(kv_capacity_tokens=kv_capacity_tokens(deployment),
                                     max_num_batched_tokens=budget), model=model.name)

        def load() -> pb.Load:
            return pb.Load(num_running=worker.num_running,
                           num_waiting=worker.engine.num_waiting,
                           num_queued_tokens=worker.engine.num_queued_tokens)

        def slow_links(planes: Mapping[str, float]) -> None:
            own = worker.own_deployment
            worker.use_hardware(own.replace(hardware=degrade_links(own.hardware, planes)))

        def become(d: Deployment, served) -> pb.Capacity:
            budget = prefill_token_budget(config, d)
            worker.use_instance(PrefillInstance(PrefillEngine(budget), d, cache_source(config)))
            servicer.model = served.name
            metrics.use_model(served.name)
            metrics.hw.on_start(d, "prefill", config.speedup, config.cache.block_size,
                                kv_capacity_tokens(d), config.cache.enabled)
            return pb.Capacity(kv_capacity_tokens=kv_capacity_tokens(d),
                               max_num_batched_tokens=budget)

        def set_switching(on: bool) -> None:
            servicer.switching = on

        servicer = PrefillServicer(worker, model.name)
        hooks = WorkerHooks(load=load, is_idle=lambda: servicer.num_inflight == 0,
                            faults=FaultHooks(slow_links=slow_links))
        loader = ModelLoader(config, deployment, worker_id, args.ems, WallClock(config.speedup),
                             metrics.model_load, cluster_token=token, model=model)
        switcher = ModelSwitcher(config, "prefill", model, loader, SwitchHooks(
            begin=lambda: set_switching(True),
            is_idle=lambda: servicer.num_inflight == 0 and worker.instance.batch is None,
            become=become, end=lambda: set_switching(False)))
        return await serve_worker(
            worker, lambda s: pb_grpc.add_PrefillServiceServicer_to_server(servicer, s),
            args, registry, registration, hooks, config.drain_timeout_s, token, loader,
            switcher)

    return run_service(f"prefill[{worker_id}]", args.log_level, start)


if __name__ == "__main__":
    sys.exit(main())
