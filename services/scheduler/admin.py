"""The admin API for injected faults (docs/faults.md), behind the admin guard.

    POST   /admin/faults        inject one fault (JSON body: FaultBody) -> 201 and the fault
    GET    /admin/faults        the active faults
    DELETE /admin/faults        clear them all
    DELETE /admin/faults/{id}   clear one (404 if it is not active)

The guard is a FastAPI dependency passed in by `build_app`
(`services.scheduler.auth.require_admin`: the admin key when one is configured); every route
here depends on it. `InjectedFailures` is the ASGI middleware that serves `fail_requests`
faults: it answers a generation request with the injected status and OpenAI error JSON before
the request is parsed or any stream header is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from services.scheduler.fault_book import FaultBook, FaultRejected, FaultSpec
from services.scheduler.openai_api import ApiError

AdminGuard = Callable[..., Any]
"""A FastAPI dependency that raises (401/403) unless the caller may administer."""

GENERATION_PATHS = frozenset({"/v1/completions", "/v1/chat/completions"})


class FaultBody(BaseModel):
    """One fault to inject; see services.scheduler.fault_book for what each kind does."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["fail_requests", "degrade_link", "stall_worker", "kill_worker",
                  "ems_unreachable"]
    target: str = Field(default="", description="worker id, or pool (degrade_link); '' = all")
    status: int = Field(default=503, description="fail_requests: HTTP status to answer")
    count: int = Field(default=1, description="fail_requests: how many requests")
    plane: str = Field(default="", description="degrade_link: ub|rdma|vpc|ems_ub|ems_vpc")
    factor: float = Field(default=1.0, description="degrade_link: times slower (> 1)")
    duration_s: float = Field(default=0.0, description="wall seconds; 0: until cleared")
    mode: str = Field(default="refuse", description="ems_unreachable: refuse | blackhole")


def admin_router(book: FaultBook, guard: AdminGuard) -> APIRouter:
    """The /admin/faults routes, each behind `guard`; left out of the OpenAPI schema (API
    fuzzers driven from it must not inject faults), documented in docs/faults.md."""
    router = APIRouter(prefix="/admin", dependencies=[Depends(guard)], include_in_schema=False)

    @router.get("/faults")
    async def list_faults() -> dict[str, Any]:
        now = time.monotonic()
        return {"faults": [f.view(now) for f in book.active(now)]}

    @router.post("/faults", status_code=201)
    async def inject(body: FaultBody) -> dict[str, Any]:
        now = time.monotonic()
        try:
            fault = book.add(FaultSpec(**body.model_dump()), now)
        except FaultRejected as e:
            raise ApiError(e.status, str(e)) from None
        return fault.view(now)

    @router.delete("/faults")
    async def clear_all() -> dict[str, Any]:
        return {"cleared": book.clear()}

    @router.delete("/faults/{fault_id}")
    async def clear(fault_id: str) -> dict[str, Any]:
        fault = book.remove(fault_id)
        if fault is None:
            raise ApiError(404, f"no active fault {fault_id!r}")
        return fault.view(time.monotonic())

    return router


class InjectedFailures:
    """ASGI middleware: fail generation requests while a `fail_requests` fault has some left."""

    def __init__(self, app: ASGIApp, book: FaultBook) -> None:
        self.app = app
        self.book = book

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"] in GENERATION_PATHS):
            status = self.book.take_request_failure(time.monotonic())
            if status is not None:
                retry = 1.0 if status in (429, 503) else None
                error = ApiError(status, f"injected fault: this request fails with HTTP {status}",
                                 retry_after_s=retry)
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
