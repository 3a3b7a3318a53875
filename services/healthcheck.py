"""A probe for container healthchecks: exit 0 when the target is healthy, 1 when not.

    python -m services.healthcheck grpc HOST:PORT [--service NAME] [--timeout S]
    python -m services.healthcheck http URL [--timeout S]

`grpc` calls the standard `grpc.health.v1.Health/Check` that every supernode gRPC server
serves and succeeds on SERVING; `http` succeeds on a 2xx answer (the scheduler's /ready is
503 until both pools have a live worker). Slim images have no curl, and a probe that imports
only what it needs stays cheap when a healthcheck runs it every few seconds.
"""

from __future__ import annotations

import argparse
import sys


def check_grpc(address: str, service: str, timeout_s: float) -> str | None:
    """None when `address` reports SERVING for `service`, else why not."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as e:
            return f"{e.code().name}: {e.details()}"  # type: ignore[attr-defined]
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return None


def check_http(url: str, timeout_s: float) -> str | None:
    """None when GET `url` answers 2xx, else why not."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))
    return None if 200 <= status < 300 else f"HTTP {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.healthcheck",
                                     description=__doc__.split("\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    g = kinds.add_parser("grpc", help="grpc.health.v1 Check")
    g.add_argument("address", metavar="HOST:PORT")
    g.add_argument("--service", default="", help="health service name ('' = the server)")
    h = kinds.add_parser("http", help="GET, 2xx is healthy")
    h.add_argument("url")
    for p in (g, h):
        p.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    if args.kind == "grpc":
        target, problem = args.address, check_grpc(args.address, args.service, args.timeout)
    else:
        target, problem = args.url, check_http(args.url, args.timeout)
    if problem is not None:
        print(f"unhealthy: {target}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
