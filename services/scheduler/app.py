"""The OpenAI-compatible HTTP front end of the scheduler."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI
from fastapi import Request as HttpRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.metrics_http import CONTENT_TYPE as METRICS_CONTENT_TYPE
from services.common.metrics_http import exposition
from services.scheduler import auth
from services.scheduler.admin import InjectedFailures, admin_router
from services.scheduler.arrival import ArrivalStamp
from services.scheduler.fault_book import FaultBook
from services.scheduler.flow import RequestFlow
from services.scheduler.generation import generate, new_jobs
from services.scheduler.health import SERVING_POOLS, health_report, ready_report
from services.scheduler.info_routes import add_info_routes
from services.scheduler.limits import BodyLimits
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.openai_api import (
    ApiError,
    ChatCompletionRequest,
    CompletionRequest,
    check_request,
    check_token_ids,
    completion_prompts,
)
from services.scheduler.prompts import chat_ids, text_ids
from services.scheduler.responses import CHAT, COMPLETION
from supernode.config import ApiConfig
from supernode.engine.registry import WorkerKind, WorkerRegistry
from supernode.tokenizer import TextTokenizer

log = logging.getLogger(__name__)


@dataclass
class FrontEnd:
    """Everything the HTTP routes need."""

    model_name: str
    max_model_len: int
    tokenizer: TextTokenizer
    flow: RequestFlow
    registry: WorkerRegistry
    metrics: SchedulerMetrics
    prometheus: CollectorRegistry
    created: int
    faults: FaultBook
    expected_workers: dict[WorkerKind, int]
    """Configured pool sizes: /health is degraded while a pool has fewer live workers."""
    instance_id: str
    """This scheduler process's id, in /health and /ready."""
    api_keys: auth.ApiKeys = field(default_factory=auth.ApiKeys)
    chat_template: str = "deepseek-r1"
    limits: ApiConfig = field(default_factory=ApiConfig)
    models: Mapping[str, ServedModelCard] = field(default_factory=dict)
    """Every served model by the name clients use (empty: just `model_name`)."""

    def served(self) -> Mapping[str, ServedModelCard]:
        """The served models by name (one tokenizer and chat template for all: the primary
        model's, as the metrics are)."""
        return self.models or {self.model_name: ServedModelCard(
            self.model_name, self.model_name, self.max_model_len)}


class PoolSize(BaseModel):
    """Body of PUT /admin/pools/{pool}."""

    instances: int = Field(ge=1, description="instances the pool should have")


SERVING_POOL_NAMES = tuple(kind.value for kind in SERVING_POOLS)


@dataclass(frozen=True)
class ServedModelCard:
    """What /v1/models says about one served model."""

    name: str
    root: str
    """Its versioned id, `<profile>@<version>`."""
    max_model_len: int


def build_app(fe: FrontEnd) -> FastAPI:
    """The HTTP app; operator routes (/metrics, /workers, /sd/targets, /admin/*) need the
    admin key when one is configured (services.scheduler.auth).

    Middleware, outermost first: the arrival stamp (a request's timeline starts when it
    reached the server), API keys (an unauthenticated request is refused before its body is
    read), body limits (size, read time, JSON shape), injected request failures."""
    app = FastAPI(title="supernode", docs_url=None, redoc_url=None)
    app.include_router(admin_router(fe.faults, auth.require_admin))
    app.add_middleware(InjectedFailures, book=fe.faults)
    app.add_middleware(BodyLimits, limits=fe.limits)
    auth.install(app, fe.api_keys)
    app.add_middleware(ArrivalStamp, clock=fe.flow.clock)
    admin = [Depends(auth.require_admin)]

    @app.exception_handler(ApiError)
    async def _api_error(request: HttpRequest, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: HttpRequest, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: HttpRequest, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: f"route {request.url.path} not found",
                   405: f"method {request.method} not allowed on {request.url.path}"}
        return ApiError(exc.status_code, message.get(exc.status_code, str(exc.detail)),
                        headers=dict(exc.headers or {})).response()

    @app.get("/health")
    async def health() -> Response:
        body, status = health_report(fe.registry, fe.expected_workers, fe.instance_id)
        body["lag"] = fe.metrics.recent_lag.summary()
        return JSONResponse(body, status_code=status)

    @app.put("/admin/pools/{pool}", dependencies=admin)
    async def expected_pool(pool: str, body: PoolSize) -> dict[str, Any]:
        """How many instances `pool` should have, as a launcher that resized it says:
        /health is degraded below it."""
        if pool not in SERVING_POOL_NAMES:
            raise ApiError(400, f"pool must be one of {', '.join(SERVING_POOL_NAMES)}, "
                           f"got {pool!r}", "pool")
        fe.expected_workers[WorkerKind(pool)] = body.instances
        fe.metrics.workers_expected.labels(pool=pool).set(body.instances)
        return {"pool": pool, "expected": body.instances}

    @app.get("/ready")
    async def ready() -> Response:
        body, status = ready_report(fe.registry, fe.instance_id)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", dependencies=admin)
    async def metrics() -> Response:
        fe.metrics.count_states(fe.flow.active)
        return Response(exposition(fe.prometheus), media_type=METRICS_CONTENT_TYPE)

    @app.get("/workers", dependencies=admin)
    async def workers() -> list[dict[str, Any]]:
        """The live registry: every worker's address, shape and last reported load."""
        return [{"worker_id": w.worker_id, "kind": w.kind.value, "address": w.address,
                 "metrics_address": w.metrics_address, "num_devices": w.num_devices,
                 "num_dies": w.num_dies, "kv_capacity_tokens": w.kv_capacity_tokens,
                 "num_inflight": w.num_inflight, "draining": w.draining,
                 "load": dataclasses.asdict(w.load), "state": w.state.value,
                 "model_load": dataclasses.asdict(w.model_load) if w.model_load else None,
                 "model": w.model, "switching_to": w.switching_to}
                for w in fe.registry.all()]

    @app.get("/sd/targets", dependencies=admin)
    async def sd_targets() -> list[dict[str, Any]]:
        """Prometheus http_sd: every registered worker's /metrics address."""
        return [{"targets": [w.metrics_address],
                 "labels": {"role": w.kind.value, "worker_id": w.worker_id}}
                for w in fe.registry.all() if w.metrics_address]

    add_info_routes(app, fe)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: HttpRequest) -> Response:
        _check_model(fe, body.model)
        check_request(body, fe.limits)
        jobs = []
        for index, prompt in enumerate(completion_prompts(body.prompt, fe.limits)):
            if isinstance(prompt, str):
                tokens = await text_ids(fe.tokenizer, fe.limits, prompt, True)
            else:
                check_token_ids(prompt, fe.tokenizer.vocab_size)
                tokens = prompt
            choices = new_jobs(fe, request, body, tokens, body.max_tokens, index * body.n)
            if body.echo:
                echo = prompt if isinstance(prompt, str) else fe.tokenizer.decode(prompt)
                for job in choices:
                    job.echo_text = echo
            jobs.extend(choices)
        return await generate(fe, request, COMPLETION, body, jobs)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest, request: HttpRequest) -> Response:
        _check_model(fe, body.model)
        check_request(body, fe.limits)
        tokens = await chat_ids(fe.tokenizer, fe.limits, fe.chat_template, body.messages,
                                body.add_generation_prompt)
        jobs = new_jobs(fe, request, body, tokens, body.requested_max_tokens(), 0)
        return await generate(fe, request, CHAT, body, jobs)

    return app


def validation_error(exc: RequestValidationError) -> ApiError:
    """OpenAI's 400 naming the first bad field (FastAPI would answer 422)."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return ApiError(400, "request body is not valid JSON")
    return ApiError(400, f"invalid value for '{param}': {first.get('msg')}" if param
                    else f"invalid request: {first.get('msg')}", param)


def _check_model(fe: FrontEnd, model: str) -> None:
    if model not in fe.served():
        raise ApiError(404, f"The model `{model}` does not exist.", "model")
