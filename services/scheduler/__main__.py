"""`python -m services.scheduler`: the global scheduler and OpenAI endpoint (see .flow)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from dataclasses import dataclass

import uvicorn
from prometheus_client import CollectorRegistry

from services.common.credentials import Credentials, add_http_auth_flags, is_loopback
from services.common.grpc_server import GrpcServer, start_grpc_server
from services.common.ports import bind_listener, tcp_port
from services.common.worker_main import (
    base_parser,
    config_from_args,
    credentials_from_flags,
    run_service,
)
from services.ems.client import DecodeKvWriter
from services.scheduler.app import FrontEnd, ServedModelCard, build_app
from services.scheduler.auth import ApiKeys
from services.scheduler.fault_book import FaultBook
from services.scheduler.flow import RequestFlow
from services.scheduler.health import expected_pools
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.pool_metrics import PoolLoadCollector
from services.scheduler.registry_servicer import RegistryServicer
from services.scheduler.token_streams import TokenStreams
from supernode.clock import WallClock
from supernode.config import ClusterConfig
from supernode.deployment import check_deployment, instance_deployment, served_models
from supernode.engine.registry import WorkerRegistry
from supernode.lifecycle.cache import stores_decode_kv
from supernode.lifecycle.scheduler import Lifecycle
from supernode.models import load_model
from supernode.tokenizer import make_tokenizer, model_text
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


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
                          log_level: str = "info",
                          credentials: Credentials | None = None,
                          instance_id: str | None = None) -> SchedulerProcess:
    credentials = credentials or Credentials()
    token = credentials.cluster_token
    listener = bind_listener(host, http_port, "the OpenAI HTTP endpoint")
    model = load_model(config.model)
    prometheus = CollectorRegistry()
    metrics = SchedulerMetrics(prometheus, config.model_name, model.max_context_len)
    metrics.set_policies(config.routing_policy, config.routing_policy)
    registry = WorkerRegistry(lease_s=config.worker_lease_s)
    prometheus.register(PoolLoadCollector(registry))
    faults = FaultBook(registry, prometheus)
    expected = expected_pools(config)
    for kind, n in expected.items():
        metrics.workers_expected.labels(pool=kind.value).set(n)
    clock = WallClock(config.speedup)
    streams = TokenStreams(subscriber_id=f"scheduler-{uuid.uuid4().hex[:8]}",
                           on_alive=registry.touch, clock=clock, cluster_token=token)
    decode_kv = None
    if stores_decode_kv(config):
        prefill = instance_deployment(config, "prefill")
        decode_kv = DecodeKvWriter(registry, config.cache, prefill.model.kv_bytes_per_token(
            prefill.kv_dtype), config.kv_payload_scale, token)
    lifecycle = Lifecycle(config, registry)
    flow = RequestFlow(lifecycle, streams, clock, metrics,
                       on_finished=decode_kv.on_finished if decode_kv else None,
                       cluster_token=token)
    registry_servicer = RegistryServicer(registry, streams, metrics, config.heartbeat_interval_s,
                                         faults)
    streams.on_broken = registry_servicer.on_stream_broken
    registry_servicer.on_change = flow.switches.on_worker_change
    server = await start_grpc_server(
        [lambda s: pb_grpc.add_RegistryServiceServicer_to_server(registry_servicer, s)],
        host, grpc_port, token)
    fe = FrontEnd(model_name=config.model_name, max_model_len=model.max_context_len,
                  tokenizer=make_tokenizer(config.tokenizer_path, model.vocab_size, config.model),
                  flow=flow, registry=registry, metrics=metrics, prometheus=prometheus,
                  created=int(time.time()), faults=faults, expected_workers=expected,
                  instance_id=instance_id or uuid.uuid4().hex, api_keys=ApiKeys(credentials),
                  chat_template=model_text(config.model).chat_template, limits=config.api,
                  models={m.name: ServedModelCard(m.name, m.model_id,
                                                  load_model(m.profile).max_context_len)
                          for m in served_models(config)})
    http = uvicorn.Server(uvicorn.Config(build_app(fe), host=host, port=http_port,
                                         log_level=log_level.lower(), access_log=False,
                                         timeout_keep_alive=30, lifespan="off"))
    http_task = asyncio.create_task(http.serve(sockets=[listener]), name="http")
    while not http.started:
        if http_task.done():
            await http_task
            raise OSError(f"HTTP server on {host}:{http_port} did not start")
        await asyncio.sleep(0.02)
    expiry = asyncio.create_task(registry_servicer.expire_forever(), name="lease-expiry")
    return SchedulerProcess(server, http, http_task, expiry, flow, streams, decode_kv)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("scheduler")
    parser.add_argument("--http-port", type=tcp_port(1), default=8000, help="OpenAI HTTP port")
    parser.add_argument("--instance-id", default=None,
                        help="id shown in /health and /ready (default: random)")
    add_http_auth_flags(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    credentials = credentials_from_flags(args, parser)
    try:
        check_deployment(config)
        make_tokenizer(config.tokenizer_path, load_model(config.model).vocab_size, config.model)
    except (ValueError, KeyError, FileNotFoundError) as e:
        parser.error(f"--config/--set: {e}")

    async def start() -> SchedulerProcess:
        if not is_loopback(args.host) and not credentials.api_keys:
            log.warning("the OpenAI endpoint on %s:%d has no API key: anyone who reaches it "
                        "can use it (set --api-key or VLLM_API_KEY)", args.host, args.http_port)
        if not is_loopback(args.host) and not credentials.admin_key:
            log.warning("the operator routes on %s:%d (/metrics, /workers, /admin/faults: "
                        "which can stall and kill workers) have no admin key: anyone who "
                        "reaches them can use them (set --admin-key or SUPERNODE_ADMIN_KEY)",
                        args.host, args.http_port)
        return await start_scheduler(config, args.host, args.http_port, args.port,
                                     args.log_level, credentials, args.instance_id)

    return run_service("scheduler", args.log_level, start)


if __name__ == "__main__":
    sys.exit(main())
