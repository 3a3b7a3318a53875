"""Why a request could not be served, with the HTTP status each reason maps to.

Both drivers use the same classes: the live front end answers with the status (OpenAI error
JSON; 429 with Retry-After), the simulator records it as the client's error.
"""

from __future__ import annotations


class LifecycleError(Exception):
    """A request the system will not (or can no longer) serve; `status` is its HTTP status."""

    status = 503


class NoWorkers(LifecycleError):
    """No live worker of a needed kind."""

    status = 503

    def __init__(self, kind: str) -> None:
        super().__init__(f"no {kind} workers registered")
        self.kind = kind


class UnknownModel(LifecycleError):
    """The request names a model the deployment does not serve."""

    status = 404

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist.")
        self.model = model


class RequestTooLarge(LifecycleError):
    """The request can never fit a decode instance's KV cache."""

    status = 400


class Overloaded(LifecycleError):
    """The request would wait longer than allowed; `retry_after_s` is model seconds."""

    status = 429

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class RequestFailed(LifecycleError):
    """The request could not be served after every retry."""

    status = 503


class RequestTimedOut(RequestFailed):
    """The request's own deadline passed before its first token."""

    status = 408
