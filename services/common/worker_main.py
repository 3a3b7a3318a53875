"""Shared entry-point plumbing of the service processes: flags, config, signals."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
from services.common.faults import FaultHooks, WorkerFaults
from services.common.grpc_server import GrpcServer, start_grpc_server
from services.common.logs import configure_logging
from services.common.metrics_http import serve_metrics
from services.common.model_loading import ModelLoader
from services.common.model_switch import ModelSwitcher
from services.common.ports import tcp_port
from services.common.registration import Registrar
from supernode.config import ClusterConfig, load_config
from supernode.deployment import ServedModel, served_models
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

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
    parser.add_argument("--port", type=tcp_port(), default=0,
                        help="gRPC port (0: any free port)")
    parser.add_argument("--metrics-port", type=tcp_port(), default=0,
                        help="/metrics port (0: any)")
    parser.add_argument("--log-level", default="INFO")
    add_cluster_token_flag(parser)
    return parser


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scheduler", required=True, metavar="HOST:PORT",
                        help="the scheduler's registry gRPC address")
    parser.add_argument("--worker-id", default=None, help="unique id (default: role + random)")
    parser.add_argument("--ems", default=None, metavar="HOST:PORT",
                        help="EMS gRPC address: the prefix cache (prefill) and model loads")
    parser.add_argument("--served-model", default=None, metavar="NAME",
                        help="the served model the instance starts with (default: the primary "
                             "model); one of the config's served_models")


def start_model(config: ClusterConfig, args: argparse.Namespace,
                parser: argparse.ArgumentParser) -> ServedModel:
    """The served model `--served-model` names (default: the primary one); exits otherwise."""
    models = {m.name: m for m in served_models(config)}
    name = args.served_model or config.model_name
    if name not in models:
        parser.error(f"--served-model {name!r} is not one of the served models "
                     f"({', '.join(models)})")
    return models[name]


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


@dataclass(frozen=True)
class WorkerHooks:
    """What the shared worker plumbing needs from a prefill or decode role."""

    load: Callable[[], pb.Load]
    """The load reported on each heartbeat."""
    is_idle: Callable[[], bool]
    """True when no request is running or waiting here (a drain ends then)."""
    begin_drain: Callable[[], None] = lambda: None
    """Called once when the drain starts (e.g. refuse new admissions)."""
    faults: FaultHooks = field(default_factory=FaultHooks)


@dataclass
class WorkerProcess:
    """A running prefill or decode worker: its engine loop, gRPC server, /metrics, registration,
    and its model load (None when none is modelled)."""

    worker: Stoppable
    grpc: GrpcServer
    registrar: Registrar
    metrics_server: WSGIServer
    hooks: WorkerHooks
    drain_timeout_s: float
    loader: ModelLoader | None = None
    switcher: ModelSwitcher | None = None

    async def drain(self) -> None:
        """Leave routing, then wait (up to `drain_timeout_s` wall seconds) until every running
        request has finished; `stop` hands whatever is left to the scheduler's failover."""
        started = time.monotonic()
        self.hooks.begin_drain()
        await self.registrar.drain()
        deadline = started + self.drain_timeout_s
        while not self.hooks.is_idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.hooks.is_idle():
            log.info("drained in %.1fs", time.monotonic() - started)
        else:
            load = self.hooks.load()
            log.warning("drain timeout (%.0fs): %d running and %d waiting requests are handed "
                        "off (they fail over)", self.drain_timeout_s, load.num_running,
                        load.num_waiting)

    async def stop(self) -> None:
        if self.switcher is not None:
            await self.switcher.stop()
        if self.loader is not None:
            await self.loader.stop()
        await self.registrar.leave()
        await self.grpc.stop()
        await self.worker.stop()
        self.metrics_server.shutdown()


async def serve_worker(worker: Stoppable, add_servicer: Callable[[grpc.aio.Server], None],
                       args: argparse.Namespace, registry: CollectorRegistry,
                       registration: Callable[[str, str], pb.RegisterRequest],
                       hooks: WorkerHooks, drain_timeout_s: float,
                       cluster_token: str | None = None,
                       loader: ModelLoader | None = None,
                       switcher: ModelSwitcher | None = None) -> WorkerProcess:
    """Expose a started worker: gRPC (with health), /metrics, and registration with the
    scheduler, whose heartbeat replies bring the injected faults (see services.common.faults).
    `registration(address, metrics_address)` builds the register message; `cluster_token` is
    demanded by its gRPC server and presented to the scheduler; with a `loader` the worker
    registers as loading and turns ready when its model load is over; a `switcher` serves
    the scheduler's model switch orders (WorkerService)."""
    servicers = [add_servicer]
    if switcher is not None:
        servicers.append(lambda s: pb_grpc.add_WorkerServiceServicer_to_server(switcher, s))
    server = await start_grpc_server(servicers, args.host, args.port, cluster_token)
    metrics_server, metrics_port = serve_metrics(registry, args.host, args.metrics_port)
    host = args.advertise_host or args.host
    request = registration(f"{host}:{server.port}", f"{host}:{metrics_port}")
    faults = WorkerFaults(registry, request.worker_id, hooks.faults)
    registrar = Registrar(args.scheduler, request, hooks.load, on_faults=faults.update,
                          cluster_token=cluster_token)
    if switcher is not None:
        switcher.registrar = registrar
    if loader is not None:
        loader.start(registrar, server)
    registrar.start()
    return WorkerProcess(worker, server, registrar, metrics_server, hooks, drain_timeout_s,
                         loader, switcher)


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
    """Serve until SIGINT/SIGTERM; a service with `drain()` drains first, unless a second
    signal arrives during the drain."""
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    try:
        service = await start()
    except OSError as e:  # a port taken, an address not ours: say so, without a traceback
        log.critical("%s cannot start: %s", role, e.strerror or e)
        return 1
    await stop_event.wait()
    drain = getattr(service, "drain", None)
    if drain is not None:
        stop_event.clear()
        log.info("%s draining (a second SIGTERM or SIGINT stops at once)", role)
        draining = asyncio.create_task(drain(), name="drain")
        signalled = asyncio.create_task(stop_event.wait())
        await asyncio.wait([draining, signalled], return_when=asyncio.FIRST_COMPLETED)
        for task in (draining, signalled):
            task.cancel()
        await asyncio.gather(draining, signalled, return_exceptions=True)
    log.info("%s stopping", role)
    await service.stop()
    return 0
