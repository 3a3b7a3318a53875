"""When a request reached the server: the start of its timeline.

`ArrivalStamp` is the outermost ASGI middleware. It stamps each HTTP request with the model
time it arrived, before anything reads or checks its body, so the lifecycle anchors the
request's first stage there (`Request.arrived_at`): the front end's own work (API keys, body
limits, JSON parsing, tokenizing, validation) is then absorbed into the modelled time
instead of added on top of it (issue 12, "live time anchored to the request").
"""

from __future__ import annotations

from starlette.requests import Request as HttpRequest
from starlette.types import ASGIApp, Receive, Scope, Send

from supernode.clock import Clock


class ArrivalStamp:
    """ASGI middleware: `request.state.arrived_at` = the clock's now on arrival."""

    def __init__(self, app: ASGIApp, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["arrived_at"] = self.clock.now()
        await self.app(scope, receive, send)


def arrived_at(request: HttpRequest) -> float:
    """The model time `request` reached the server (stamped by ArrivalStamp)."""
    return request.state.arrived_at
