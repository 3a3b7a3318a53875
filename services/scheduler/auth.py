"""Who may call the scheduler's HTTP endpoint, and which cache namespace a request uses.

- `/v1/*`: when API keys are configured, a request must send one of them, or the admin key,
  as `Authorization: Bearer <key>`; otherwise 401 in OpenAI's error JSON (as vLLM's
  `--api-key`). Without API keys, `/v1/*` is open.
- Operator routes (/metrics, /workers, /sd/targets, /admin/faults) declare
  `Depends(require_admin)`: when an admin key is configured they need it (401 without a valid
  key, 403 with a tenant's key); without one they are open.
- `/health` and `/ready` are always open (orchestrators probe them).
- Cache namespace: `{model}/{tenant}`, the tenant of the caller's key (`--api-key` keys and
  the admin key belong to the default tenant ""). The `x-supernode-namespace` header picks
  another namespace only for the admin key, or for anyone while no key of any kind is
  configured (an open server has nothing to isolate), so a tenant cannot probe another's
  cached prefixes through `cached_tokens`.

Keys are looked up by their SHA-256 digest: the lookup's timing can then reveal only facts
about digests, never a prefix of a key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, ClassVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.credentials import DEFAULT_TENANT, Credentials
from services.scheduler.openai_api import ApiError

NAMESPACE_HEADER = "x-supernode-namespace"
API_PREFIX = "/v1/"


@dataclass(frozen=True)
class Principal:
    """The caller of one HTTP request."""

    tenant: str = DEFAULT_TENANT
    authenticated: bool = False
    """Presented a configured API key or the admin key."""
    admin: bool = False
    """Presented the admin key, or no key of any kind is configured."""


class AuthError(ApiError):
    """401 or 403 as OpenAI's error JSON, with the RFC 6750 challenge on 401."""

    TYPES: ClassVar[dict[int, str]] = {401: "AuthenticationError", 403: "PermissionDeniedError"}

    def response(self) -> JSONResponse:
        response = super().response()
        if self.status == 401:
            response.headers["www-authenticate"] = "Bearer"
        return response


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The configured API keys (by tenant) and admin key, as digests."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        credentials = credentials or Credentials()
        self._tenants = {_digest(key): tenant for key, tenant in credentials.api_keys}
        self._admin = _digest(credentials.admin_key) if credentials.admin_key else None

    @property
    def guards_api(self) -> bool:
        return bool(self._tenants)

    @property
    def guards_admin(self) -> bool:
        return self._admin is not None

    def identify(self, authorization: str | None) -> Principal:
        """The principal behind an `Authorization` header value (None: no header)."""
        scheme, _, key = (authorization or "").partition(" ")
        digest = _digest(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
        if digest is not None and digest == self._admin:
            return Principal(DEFAULT_TENANT, authenticated=True, admin=True)
        if digest is not None and digest in self._tenants:
            return Principal(self._tenants[digest], authenticated=True)
        return Principal(admin=not (self.guards_api or self.guards_admin))

    def check_api(self, principal: Principal, has_credentials: bool) -> None:
        """Raise AuthError when `/v1/*` needs a key this caller did not present."""
        if self.guards_api and not principal.authenticated:
            raise AuthError(401, "Incorrect API key provided." if has_credentials else
                            "Missing API key: send `Authorization: Bearer <key>`.")

    def check_admin(self, principal: Principal, has_credentials: bool) -> None:
        if not self.guards_admin or principal.admin:
            return
        if principal.authenticated:
            raise AuthError(403, "This route needs the admin key.")
        raise AuthError(401, "Incorrect admin key provided." if has_credentials else
                        "Missing admin key: send `Authorization: Bearer <admin key>`.")


class ApiKeyMiddleware:
    """Identifies the caller of every HTTP request (kept in `request.state.principal`) and
    answers 401 on `/v1/*` without a valid key. Pure ASGI, so streamed responses pass through
    untouched."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = _header(scope, b"authorization")
        principal = self.keys.identify(authorization)
        scope.setdefault("state", {})["principal"] = principal
        path = scope["path"]
        if path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/"):
            try:
                self.keys.check_api(principal, authorization is not None)
            except AuthError as e:
                await e.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def install(app: FastAPI, keys: ApiKeys) -> None:
    """Guard `app` with `keys`; call once in the app's composition root."""
    app.state.api_keys = keys
    app.add_middleware(ApiKeyMiddleware, keys=keys)

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        return exc.response()

    app.add_exception_handler(AuthError, refused)


def principal(request: Request) -> Principal:
    """The caller of `request`, as the middleware identified it."""
    found = getattr(request.state, "principal", None)
    if found is None:
        found = request.app.state.api_keys.identify(request.headers.get("authorization"))
    return found


def require_admin(request: Request) -> Principal:
    """FastAPI dependency for operator routes: `@app.get(..., dependencies=[Depends(
    require_admin)])`, or a parameter `caller: AdminCaller` when the route wants the caller."""
    caller = principal(request)
    request.app.state.api_keys.check_admin(caller, "authorization" in request.headers)
    return caller


AdminCaller = Annotated[Principal, Depends(require_admin)]


def tenant_namespace(request: Request) -> str:
    """The tenant part of the request's cache namespace (`supernode.lifecycle.cache.
    cache_namespace(model, tenant)`): the caller's tenant, or what the namespace header names
    when the caller is an admin."""
    caller = principal(request)
    chosen = request.headers.get(NAMESPACE_HEADER) if caller.admin else None
    return chosen if chosen is not None else caller.tenant
