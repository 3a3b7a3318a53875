"""Shared entry-point plumbing of the service processes: flags, config, signals."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

import grpc
import yaml
from prometheus_client import CollectorRegistry

from services.common.credentials import (
    Credentials,
    CredentialsError,
    add_cluster_token_flag,
    check_bind,
    credentials_from_args,
)
from services.common.grpc_server import GrpcServer, start_grpc_server
from services.common.logs import configure_logging
from services.common.metrics_http import serve_metrics
from services.common.model_loading import ModelLoader
from services.common.registration import Registrar
from supernode.config import ClusterConfig, load_config
from supernode.v1 import supernode_pb2 as pb

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    async def stop(self) -> None: ...


def base_parser(role: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"supernode serve {role}",
                                     description=f"Run one supernode {role} process.")
    parser.add_argument("--config", help="deployment YAML (default: the embedded default)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field, dotted (e.g. decode.num_devices=32)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default loopback; any other address needs a "
                             "cluster token)")
    parser.add_argument("--advertise-host", default=None,
                        help="host others use to reach this process (default: --host)")
    parser.add_argument("--port", type=int, default=0, help="gRPC port (0: any free port)")
    parser.add_argument("--metrics-port", type=int, default=0, help="/metrics port (0: any)")
    parser.add_argument("--log-level", default="INFO")
    add_cluster_token_flag(parser)
    return parser


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scheduler", required=True, metavar="HOST:PORT",
                        help="the scheduler's registry gRPC address")
    parser.add_argument("--worker-id", default=None, help="unique id (default: role + random)")
    parser.add_argument("--ems", default=None, metavar="HOST:PORT",
                        help="EMS gRPC address: the prefix cache (prefill) and model loads")


def parse_overrides(pairs: list[str], parser: argparse.ArgumentParser) -> dict[str, Any]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ClusterConfig:
    try:
        return load_config(args.config, parse_overrides(args.set, parser))
    except (ValueError, TypeError, OSError) as e:
        parser.error(f"--config/--set: {e}")
        raise  # unreachable: parser.error exits


def credentials_from_flags(args: argparse.Namespace,
                           parser: argparse.ArgumentParser) -> Credentials:
    """This process's secrets, from its flags and then the environment; exits naming the
    cause when one is unreadable, or when --host exposes the gRPC plane without a token."""
    try:
        credentials = credentials_from_args(args, os.environ)
        check_bind(args.host, credentials)
    except CredentialsError as e:
        parser.error(str(e))
        raise  # unreachable: parser.error exits
    return credentials


@dataclass
class WorkerProcess:
    """A running prefill or decode worker: its engine loop, gRPC server, /metrics, registration,
    and its model load (None when none is modelled)."""

    worker: Stoppable
    grpc: GrpcServer
    registrar: Registrar
    metrics_server: WSGIServer
    loader: ModelLoader | None = None

    async def stop(self) -> None:
        if self.loader is not None:
            await self.loader.stop()
        await self.registrar.stop()
        await self.grpc.stop()
        await self.worker.stop()
        self.metrics_server.shutdown()


async def serve_worker(worker: Stoppable, add_servicer: Callable[[grpc.aio.Server], None],
                       args: argparse.Namespace, registry: CollectorRegistry,
                       registration: Callable[[str, str], pb.RegisterRequest],
                       load: Callable[[], pb.Load],
                       cluster_token: str | None = None,
                       loader: ModelLoader | None = None) -> WorkerProcess:
    """Expose a started worker: gRPC (with health), /metrics, and registration with the
    scheduler. `registration(address, metrics_address)` builds the register message;
    `cluster_token` is demanded by its gRPC server and presented to the scheduler; with a
    `loader` the worker registers as loading and turns ready when its model load is over."""
    server = await start_grpc_server([add_servicer], args.host, args.port, cluster_token)
    metrics_server, metrics_port = serve_metrics(registry, args.host, args.metrics_port)
    host = args.advertise_host or args.host
    registrar = Registrar(args.scheduler,
                          registration(f"{host}:{server.port}", f"{host}:{metrics_port}"), load,
                          cluster_token)
    if loader is not None:
        loader.start(registrar, server)
    registrar.start()
    return WorkerProcess(worker, server, registrar, metrics_server, loader)


def default_worker_id(role: str) -> str:
    return f"{role}-{uuid.uuid4().hex[:8]}"


def run_service(role: str, level: str, start: Callable[[], Awaitable[Stoppable]]) -> int:
    """Run `start()` in an event loop until SIGINT/SIGTERM, then stop it cleanly."""
    configure_logging(role, level)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_serve(role, start))
    return uvloop.run(_serve(role, start))


async def _serve(role: str, start: Callable[[], Awaitable[Stoppable]]) -> int:
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    service = await start()
    await stop_event.wait()
    log.info("%s stopping", role)
    await service.stop()
    return 0
