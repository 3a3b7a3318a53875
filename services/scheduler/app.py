"""The OpenAI-compatible HTTP front end of the scheduler."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI
from fastapi import Request as HttpRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry

from services.common.metrics_http import CONTENT_TYPE as METRICS_CONTENT_TYPE
from services.common.metrics_http import exposition
from services.scheduler import auth
from services.scheduler.admin import InjectedFailures, admin_router
from services.scheduler.fault_book import FaultBook
from services.scheduler.flow import RequestFlow
from services.scheduler.health import health_report, ready_report
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.openai_api import (
    ApiError,
    ChatCompletionRequest,
    CompletionRequest,
    completion_prompt_tokens,
    parse_request,
    render_chat,
)
from services.scheduler.responses import (
    CHAT,
    COMPLETION,
    ChunkWriter,
    Kind,
    StopMatcher,
    full_response,
)
from supernode.engine.registry import WorkerKind, WorkerRegistry, WorkerState
from supernode.lifecycle.cache import cache_namespace
from supernode.lifecycle.errors import LifecycleError, NoWorkers, Overloaded, RequestTimedOut
from supernode.lifecycle.request import Request
from supernode.tokenizer import TextTokenizer, sample_token

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
    expected_workers: Mapping[WorkerKind, int]
    """Configured pool sizes: /health is degraded while a pool has fewer live workers."""
    instance_id: str
    """This scheduler process's id, in /health and /ready."""
    api_keys: auth.ApiKeys = field(default_factory=auth.ApiKeys)
    models: Mapping[str, ServedModelCard] = field(default_factory=dict)
    """Every served model by the name clients use (empty: just `model_name`)."""


@dataclass(frozen=True)
class ServedModelCard:
    """What /v1/models says about one served model."""

    name: str
    root: str
    """Its versioned id, `<profile>@<version>`."""
    max_model_len: int


def _served(fe: FrontEnd) -> Mapping[str, ServedModelCard]:
    return fe.models or {fe.model_name: ServedModelCard(fe.model_name, fe.model_name,
                                                        fe.max_model_len)}


def build_app(fe: FrontEnd) -> FastAPI:
    """The HTTP app; operator routes (/metrics, /workers, /sd/targets, /admin/*) need the
    admin key when one is configured (services.scheduler.auth)."""
    app = FastAPI(title="supernode", docs_url=None, redoc_url=None)
    app.include_router(admin_router(fe.faults, auth.require_admin))
    app.add_middleware(InjectedFailures, book=fe.faults)
    auth.install(app, fe.api_keys)
    admin = [Depends(auth.require_admin)]

    @app.exception_handler(ApiError)
    async def _api_error(request: HttpRequest, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: HttpRequest, exc: RequestValidationError) -> JSONResponse:
        return ApiError(400, str(exc)).response()

    @app.get("/health")
    async def health() -> Response:
        body, status = health_report(fe.registry, fe.expected_workers, fe.instance_id)
        body["lag"] = fe.metrics.recent_lag.summary()
        return JSONResponse(body, status_code=status)

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

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{
            "id": m.name, "object": "model", "created": fe.created, "owned_by": "supernode",
            "root": m.root, "parent": None, "max_model_len": m.max_model_len}
            for m in _served(fe).values()]}

    @app.post("/v1/completions")
    async def completions(request: HttpRequest) -> Response:
        body = parse_request(CompletionRequest, await _json(request))
        _check_model(fe, body.model)
        tokens = completion_prompt_tokens(body.prompt, fe.tokenizer.encode,
                                          fe.tokenizer.vocab_size)
        return await _generate(fe, request, COMPLETION, body, tokens, body.max_tokens)

    @app.post("/v1/chat/completions")
    async def chat(request: HttpRequest) -> Response:
        body = parse_request(ChatCompletionRequest, await _json(request))
        _check_model(fe, body.model)
        tokens = fe.tokenizer.encode(render_chat(body.messages))
        return await _generate(fe, request, CHAT, body, tokens, body.requested_max_tokens())

    return app


async def _json(request: HttpRequest) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"request body is not valid JSON: {e}") from None


def _check_model(fe: FrontEnd, model: str) -> None:
    if model not in _served(fe):
        raise ApiError(404, f"The model `{model}` does not exist.", "model")


class _RandomIds:
    """Synthetic output ids: seeded draws from the vocabulary, EOS to end with "stop"."""

    def __init__(self, tokenizer: TextTokenizer, seed: int) -> None:
        self.tokenizer = tokenizer
        self.rng = random.Random(seed)

    def next_ids(self, num_tokens: int, finish_reason: str | None) -> list[int]:
        vocab = self.tokenizer.vocab_size
        ids = [sample_token(self.rng, vocab) for _ in range(num_tokens)]
        if finish_reason == "stop" and ids:
            ids[-1] = self.tokenizer.eos_token_id
        return ids


def _new_record(fe: FrontEnd, request: HttpRequest, body: Any, tokens: list[int],
                max_tokens: int | None) -> Request:
    max_model_len = _served(fe)[body.model].max_model_len
    room = max_model_len - len(tokens)
    if room < 1:
        raise ApiError(400, f"This model's maximum context length is {max_model_len} tokens. "
                       f"However, your prompt has {len(tokens)} tokens.", "messages")
    if max_tokens is not None and max_tokens > room:
        raise ApiError(400, f"This model's maximum context length is {max_model_len} tokens. "
                       f"However, you requested {len(tokens) + max_tokens} tokens "
                       f"({len(tokens)} in the messages, {max_tokens} in the completion).",
                       "max_tokens")
    seed = body.seed if body.seed is not None else random.getrandbits(48)
    return Request(
        request_id=uuid.uuid4().hex,  # never the client's id: two requests may share one
        num_prompt_tokens=len(tokens), max_tokens=max_tokens or room, seed=seed,
        arrived_at=fe.flow.clock.now(), ignore_eos=body.ignore_eos, model=body.model,
        cache_namespace=cache_namespace(body.model, auth.tenant_namespace(request)),
        prompt_token_ids=tokens, output_token_ids=[], sampler=_RandomIds(fe.tokenizer, seed))


_REJECTION_REASONS = {429: "overloaded", 400: "too_large", 503: "no_workers"}


def _api_error(fe: FrontEnd, error: LifecycleError) -> ApiError:
    """The OpenAI error JSON for a request the lifecycle refused or gave up on."""
    m = fe.metrics
    reason = ("timeout" if isinstance(error, RequestTimedOut)
              else _REJECTION_REASONS.get(error.status, "failed"))
    m.rejected.labels(**m.labels, reason=reason).inc()
    if error.status >= 500:
        m.failed.labels(**m.labels, status=str(error.status)).inc()
    retry_after_s = None
    if isinstance(error, Overloaded):
        retry_after_s = fe.flow.clock.to_wall_s(error.retry_after_s)
    elif error.status == 503:
        retry_after_s = 1.0
    message = (_no_workers_message(fe.registry, error) if isinstance(error, NoWorkers)
               else str(error))
    return ApiError(error.status, message, "max_tokens" if error.status == 400 else None,
                    retry_after_s=retry_after_s)


def _no_workers_message(registry: WorkerRegistry, error: NoWorkers) -> str:
    """Why a pool is empty: nothing registered, or every worker still loading its model."""
    loading = [w for w in registry.registered(WorkerKind(error.kind))
               if w.state is WorkerState.LOADING]
    if not loading:
        return str(error)
    return (f"no {error.kind} workers ready: {len(loading)} still loading the model "
            f"(see /workers); retry later")


async def _generate(fe: FrontEnd, request: HttpRequest, kind: Kind, body: Any,
                    tokens: list[int], max_tokens: int | None) -> Response:
    record = _new_record(fe, request, body, tokens, max_tokens)
    try:
        fe.flow.accept(record)
    except LifecycleError as e:
        raise _api_error(fe, e) from None
    m = fe.metrics
    m.prompt_len.labels(**m.labels).observe(len(tokens))
    m.max_tokens.labels(**m.labels).observe(record.max_tokens)
    response_id = f"{kind.id_prefix}{record.request_id}"
    created = int(time.time())
    headers = {"x-request-id": request.headers.get("x-request-id") or record.request_id}
    if body.stream:
        writer = ChunkWriter(kind, response_id, created, record.model, body.include_usage)
        return StreamingResponse(_stream(fe, record, writer, body), headers=headers,
                                 media_type="text/event-stream")
    text: list[str] = []
    try:
        async for piece, _ in _texts(fe, record, body.stop_strings()):
            text.append(piece)
    except LifecycleError as e:
        raise _api_error(fe, e) from None
    return JSONResponse(full_response(kind, response_id, created, record.model, "".join(text),
                                      record.finish_reason, record), headers=headers)


async def _stream(fe: FrontEnd, record: Request, writer: ChunkWriter, body: Any
                  ) -> AsyncIterator[str]:
    try:
        async with contextlib.aclosing(_texts(fe, record, body.stop_strings())) as texts:
            async for piece, finish in texts:
                yield writer.content(piece, finish)
    except LifecycleError as e:
        error = _api_error(fe, e)
        yield writer.error(error.message, error.status)
        yield writer.DONE
        return
    if body.include_usage:
        yield writer.usage_chunk(record)
    yield writer.DONE


async def _texts(fe: FrontEnd, record: Request, stops: list[str]
                 ) -> AsyncIterator[tuple[str, str | None]]:
    """(text delta, finish_reason) per emission, cut at stop strings."""
    matcher = StopMatcher(stops)
    decode_token = fe.tokenizer.decode_token
    generation = fe.flow.run(record)
    try:
        async for emitted in generation:
            piece, stopped = matcher.add("".join(map(decode_token, emitted.token_ids)))
            finish = "stop" if stopped else emitted.finish_reason
            if finish and not stopped:
                piece += matcher.flush()
            if finish:
                record.finish_reason = finish
            yield piece, finish
            if finish:
                break
    except BaseException:
        if record.finish_reason is None:
            record.finish_reason = "abort"
        raise
    finally:
        await generation.aclose()
