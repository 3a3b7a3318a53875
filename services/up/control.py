"""The control API of a running `supernode up` (routes: supernode/cli/control.py).

Served on 127.0.0.1 at an ephemeral port, in a thread of the `up` process, by uvicorn. Every
route needs `Authorization: Bearer <token>`, where the token is the fresh random one `up`
wrote to its state file (readable only by its user) or, when one is configured, the admin key;
tokens are compared in constant time. Errors are OpenAI error JSON: 401 without a valid token,
400 for a malformed request, 404 for an unknown instance, 409 for what this runtime cannot do.
"""

from __future__ import annotations

import hmac
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from services.runtime.base import InstanceNotFound, Unsupported
from services.up.controller import ScaleError, UpController


class _Failed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError",
          409: "ConflictError", 500: "InternalServerError"}


def _error(status: int, message: str) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {"message": message, "type": _TYPES.get(status, "Error"),
                                   "param": None, "code": status}}, status, headers=headers)


class ScaleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: int = Field(description="instances the pool should have")


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duration_s: float = Field(default=0.0, description="pause/disconnect: seconds")


def _bearer_check(tokens: tuple[str, ...]) -> Callable[[Request], None]:
    """A dependency: 401 unless the request carries one of `tokens` ("" never matches)."""
    def authorized(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(
                hmac.compare_digest(given.encode(), t.encode()) for t in tokens if t):
            raise _Failed(401, "a valid control token or admin key is required "
                               "(Authorization: Bearer ...)")

    return authorized


def _act(call: Callable[..., Any], *args: Any) -> Any:
    """Run a controller call, mapping its refusals onto HTTP statuses."""
    try:
        return call(*args)
    except ScaleError as e:
        raise _Failed(400, str(e)) from None
    except InstanceNotFound as e:
        raise _Failed(404, f"no instance {e.args[0]!r}") from None
    except Unsupported as e:
        raise _Failed(409, str(e)) from None
    except (RuntimeError, OSError) as e:  # e.g. the engine's answer (docker APIError)
        raise _Failed(409, f"the runtime refused: {e}") from None


def control_app(controller: UpController, tokens: tuple[str, ...]) -> FastAPI:
    """The routes, each behind the bearer check against `tokens`."""
    app = FastAPI(title="supernode up control", dependencies=[Depends(_bearer_check(tokens))],
                  openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(_Failed)
    async def _failed(request: Request, exc: _Failed) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"{where or 'body'}: {first.get('msg', 'invalid request')}")

    @app.get("/instances")
    def instances() -> dict[str, Any]:
        return controller.view()

    @app.put("/pools/{pool}")
    def scale(pool: str, body: ScaleBody) -> dict[str, Any]:
        return _act(controller.scale, pool, body.instances).__dict__

    @app.post("/instances/{name}/{kind}")
    def fault(name: str, kind: str, body: FaultBody | None = None) -> dict[str, Any]:
        now = time.monotonic()
        duration = body.duration_s if body else 0.0
        return _act(controller.inject, kind, name, duration, now).view(now)

    @app.get("/faults")
    def faults() -> dict[str, Any]:
        return {"faults": controller.faults(time.monotonic())}

    @app.delete("/faults")
    def clear() -> dict[str, Any]:
        return {"cleared": _act(controller.clear_faults)}

    @app.delete("/faults/{fault_id}")
    def clear_one(fault_id: str) -> dict[str, Any]:
        fault = _act(controller.clear_fault, fault_id, time.monotonic())
        if fault is None:
            raise _Failed(404, f"no runtime fault {fault_id!r} in force")
        return fault

    @app.get("/metrics")
    def metrics() -> Response:
        controller.refresh_gauges()
        return Response(generate_latest(controller.registry), media_type=CONTENT_TYPE_LATEST)

    return app


class ControlServer:
    """The control API on 127.0.0.1 at a free port, served from a daemon thread."""

    def __init__(self, controller: UpController, tokens: tuple[str, ...]) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(control_app(controller, tokens), log_level="warning",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]},
                                        name="control-api", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the control API did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._socket.close()
