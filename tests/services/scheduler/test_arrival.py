"""ArrivalStamp: a request's arrival is read before anything inside the app runs."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.scheduler.arrival import ArrivalStamp, arrived_at


class Ticking:
    """A clock one second later at every reading."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        self.t += 1.0
        return self.t


async def test_the_stamp_is_taken_before_the_route_runs() -> None:
    clock = Ticking()

    async def route(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"arrived_at": arrived_at(request), "handled_at": clock.now()})

    app = Starlette(routes=[Route("/r", route, methods=["POST"])])
    app.add_middleware(ArrivalStamp, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        first = (await client.post("/r", content=b"{}")).json()
        second = (await client.post("/r", content=b"{}")).json()
    assert first == {"arrived_at": 1.0, "handled_at": 2.0}
    assert second == {"arrived_at": 3.0, "handled_at": 4.0}
