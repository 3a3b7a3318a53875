"""`python -m services.scheduler`: the global scheduler and OpenAI endpoint (see .flow)."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass

import uvicorn
from prometheus_client import CollectorRegistry

from services.common.grpc_server import GrpcServer, start_grpc_server
from services.common.worker_main import base_parser, config_from_args, run_service
from services.ems.client import DecodeKvWriter
from services.scheduler.app import FrontEnd, build_app
from services.scheduler.flow import RequestFlow
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.registry_servicer import RegistryServicer
from services.scheduler.token_streams import TokenStreams
from supernode.clock import WallClock
from supernode.config import ClusterConfig
from supernode.deployment import instance_deployment
from supernode.engine.registry import WorkerRegistry
from supernode.lifecycle.cache import stores_decode_kv
from supernode.lifecycle.scheduler import Lifecycle
from supernode.models import load_model
from supernode.policy import make_policy
from supernode.tokenizer import make_tokenizer
from supernode.v1 import supernode_pb2_grpc as pb_grpc


@dataclass
class SchedulerProcess:
    grpc: GrpcServer
    http: uvicorn.Server
    http_task: asyncio.Task[None]
    expiry_task: asyncio.Task[None]
    flow: RequestFlow
    streams: TokenStreams
    decode_kv: DecodeKvWriter | None

    async def stop(self) -> None:
        self.http.should_exit = True
        await asyncio.gather(self.http_task, return_exceptions=True)
        self.expiry_task.cancel()
        await self.grpc.stop()
        await self.streams.close()
        await self.flow.close()
        if self.decode_kv is not None:
            await self.decode_kv.close()


async def start_scheduler(config: ClusterConfig, host: str, http_port: int, grpc_port: int,
                          log_level: str = "info") -> SchedulerProcess:
    model = load_model(config.model)
    prometheus = CollectorRegistry()
    metrics = SchedulerMetrics(prometheus, config.model_name, model.max_context_len)
    metrics.set_policies(config.routing_policy, config.routing_policy)
    registry = WorkerRegistry(lease_s=config.worker_lease_s)
    streams = TokenStreams(subscriber_id=f"scheduler-{uuid.uuid4().hex[:8]}",
                           on_alive=registry.touch)
    decode_kv = None
    if stores_decode_kv(config):
        prefill = instance_deployment(config, "prefill")
        decode_kv = DecodeKvWriter(registry, config.cache, prefill.model.kv_bytes_per_token(
            prefill.kv_dtype), config.kv_payload_scale)
    lifecycle = Lifecycle(config, registry)
    flow = RequestFlow(lifecycle, streams, WallClock(config.speedup), metrics,
                       on_finished=decode_kv.on_finished if decode_kv else None)
    registry_servicer = RegistryServicer(registry, streams, metrics, config.heartbeat_interval_s)
    server = await start_grpc_server(
        [lambda s: pb_grpc.add_RegistryServiceServicer_to_server(registry_servicer, s)],
        host, grpc_port)
    fe = FrontEnd(model_name=config.model_name, max_model_len=model.max_context_len,
                  tokenizer=make_tokenizer(config.tokenizer_path, model.vocab_size), flow=flow,
                  registry=registry, metrics=metrics, prometheus=prometheus,
                  created=int(time.time()))
    http = uvicorn.Server(uvicorn.Config(build_app(fe), host=host, port=http_port,
                                         log_level=log_level.lower(), access_log=False,
                                         timeout_keep_alive=30, lifespan="off"))
    http_task = asyncio.create_task(http.serve(), name="http")
    while not http.started:
        if http_task.done():
            await http_task
            raise OSError(f"HTTP server on {host}:{http_port} did not start")
        await asyncio.sleep(0.02)
    expiry = asyncio.create_task(registry_servicer.expire_forever(), name="lease-expiry")
    return SchedulerProcess(server, http, http_task, expiry, flow, streams, decode_kv)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("scheduler")
    parser.add_argument("--http-port", type=int, default=8000, help="OpenAI HTTP port")
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    try:
        make_policy(config.routing_policy)
        make_tokenizer(config.tokenizer_path, load_model(config.model).vocab_size)
    except (ValueError, KeyError, FileNotFoundError) as e:
        parser.error(f"--config/--set: {e}")

    async def start() -> SchedulerProcess:
        return await start_scheduler(config, args.host, args.http_port, args.port, args.log_level)

    return run_service("scheduler", args.log_level, start)


if __name__ == "__main__":
    sys.exit(main())
