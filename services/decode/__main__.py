"""`python -m services.decode`: one decode instance (see services.decode.worker)."""

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
from services.decode.metrics import DecodeMetrics
from services.decode.servicer import DecodeServicer
from services.decode.worker import DecodeWorker
from supernode.clock import WallClock
from supernode.deployment import build_decode_engine, instance_deployment
from supernode.hardware.degrade import degrade_links
from supernode.lifecycle.decode import DecodeInstance
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("decode")
    add_worker_flags(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    token = credentials_from_flags(args, parser).cluster_token
    worker_id = args.worker_id or default_worker_id("decode")
    model = start_model(config, args, parser)
    try:
        deployment = instance_deployment(config, "decode", model.profile)
    except ValueError as e:
        parser.error(f"decode instance: {e}")

    async def start() -> WorkerProcess:
        engine = build_decode_engine(config, deployment)
        capacity, max_num_seqs = engine.kv_capacity_tokens, engine.max_num_seqs
        registry = CollectorRegistry()
        metrics = DecodeMetrics(registry, model.name, worker_id)
        metrics.hw.on_start(deployment, "decode", config.speedup, config.cache.block_size,
                            capacity, prefix_caching=False)
        worker = DecodeWorker(DecodeInstance(engine, deployment), WallClock(config.speedup),
                              metrics, config.delivery_lead_s)
        worker.start()

        def registration(address: str, metrics_address: str) -> pb.RegisterRequest:
            return pb.RegisterRequest(
                worker_id=worker_id, kind=pb.WORKER_KIND_DECODE, address=address,
                shape=instance_shape(deployment), metrics_address=metrics_address,
                capacity=pb.Capacity(kv_capacity_tokens=capacity, max_num_seqs=max_num_seqs),
                model=model.name)

        def load() -> pb.Load:
            return pb.Load(num_running=engine.num_running, num_waiting=engine.num_waiting,
                           kv_used_tokens=engine.kv_used_tokens())

        def slow_links(planes: Mapping[str, float]) -> None:
            own = worker.own_deployment
            worker.use_hardware(own.replace(hardware=degrade_links(own.hardware, planes)))

        def begin_drain() -> None:
            servicer.draining = True

        def become(d, served) -> pb.Capacity:
            new = build_decode_engine(config, d)
            worker.use_instance(DecodeInstance(new, d))
            servicer.model = served.name
            metrics.use_model(served.name)
            metrics.hw.on_start(d, "decode", config.speedup, config.cache.block_size,
                                new.kv_capacity_tokens, prefix_caching=False)
            return pb.Capacity(kv_capacity_tokens=new.kv_capacity_tokens,
                               max_num_seqs=new.max_num_seqs)

        def set_switching(on: bool) -> None:
            servicer.switching = on

        servicer = DecodeServicer(worker, model.name)
        hooks = WorkerHooks(load=load, is_idle=lambda: worker.is_idle, begin_drain=begin_drain,
                            faults=FaultHooks(slow_links=slow_links))
        loader = ModelLoader(config, deployment, worker_id, args.ems, WallClock(config.speedup),
                             metrics.model_load, cluster_token=token, model=model)
        switcher = ModelSwitcher(config, "decode", model, loader, SwitchHooks(
            begin=lambda: set_switching(True), is_idle=lambda: worker.is_idle,
            become=become, end=lambda: set_switching(False)))
        return await serve_worker(
            worker, lambda s: pb_grpc.add_DecodeServiceServicer_to_server(servicer, s),
            args, registry, registration, hooks, config.drain_timeout_s, token, loader,
            switcher)

    return run_service(f"decode[{worker_id}]", args.log_level, start)


if __name__ == "__main__":
    sys.exit(main())
