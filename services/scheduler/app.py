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
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry

from services.common.metrics_http import CONTENT_TYPE as METRICS_CONTENT_TYPE
from services.common.metrics_http import exposition
from services.scheduler.admin import AdminGuard, InjectedFailures, admin_router, loopback_only
from services.scheduler.fault_book import FaultBook
from services.scheduler.flow import NoWorkers, RequestFailed, RequestFlow, RequestTooLarge
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
from supernode.engine.registry import WorkerKind, WorkerRegistry
from supernode.engine.request import RequestRecord
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
    speedup: float
    created: int
    faults: FaultBook
    expected_workers: Mapping[WorkerKind, int]
    """Configured pool sizes: /health is degraded while a pool has fewer live workers."""
    instance_id: str
    """This scheduler process's id, in /health and /ready."""


def build_app(fe: FrontEnd, admin_guard: AdminGuard = loopback_only) -> FastAPI:
    """The HTTP app; `admin_guard` (a FastAPI dependency) protects the /admin routes."""
    app = FastAPI(title="supernode", docs_url=None, redoc_url=None)
    app.include_router(admin_router(fe.faults, admin_guard))
    app.add_middleware(InjectedFailures, book=fe.faults)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return ApiError(400, str(exc)).response()

    @app.get("/health")
    async def health() -> Response:
        body, status = health_report(fe.registry, fe.expected_workers, fe.instance_id)
        return JSONResponse(body, status_code=status)

    @app.get("/ready")
    async def ready() -> Response:
        body, status = ready_report(fe.registry, fe.instance_id)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(exposition(fe.prometheus), media_type=METRICS_CONTENT_TYPE)

    @app.get("/workers")
    async def workers() -> list[dict[str, Any]]:
        """The live registry: every worker's address, shape and last reported load."""
        return [{"worker_id": w.worker_id, "kind": w.kind.value, "address": w.address,
                 "metrics_address": w.metrics_address, "num_devices": w.num_devices,
                 "num_dies": w.num_dies, "kv_capacity_tokens": w.kv_capacity_tokens,
                 "num_inflight": w.num_inflight, "draining": w.draining,
                 "load": dataclasses.asdict(w.load)}
                for w in fe.registry.all()]

    @app.get("/sd/targets")
    async def sd_targets() -> list[dict[str, Any]]:
        """Prometheus http_sd: every registered worker's /metrics address."""
        return [{"targets": [w.metrics_address],
                 "labels": {"role": w.kind.value, "worker_id": w.worker_id}}
                for w in fe.registry.all() if w.metrics_address]

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{
            "id": fe.model_name, "object": "model", "created": fe.created,
            "owned_by": "supernode", "root": fe.model_name, "parent": None,
            "max_model_len": fe.max_model_len}]}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = parse_request(CompletionRequest, await _json(request))
        _check_model(fe, body.model)
        tokens = completion_prompt_tokens(body.prompt, fe.tokenizer.encode,
                                          fe.tokenizer.vocab_size)
        return await _generate(fe, request, COMPLETION, body, tokens, body.max_tokens)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = parse_request(ChatCompletionRequest, await _json(request))
        _check_model(fe, body.model)
        tokens = fe.tokenizer.encode(render_chat(body.messages))
        return await _generate(fe, request, CHAT, body, tokens, body.requested_max_tokens())

    return app


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"request body is not valid JSON: {e}") from None


def _check_model(fe: FrontEnd, model: str) -> None:
    if model != fe.model_name:
        raise ApiError(404, f"The model `{model}` does not exist.", "model")


def _new_record(fe: FrontEnd, request: Request, body: Any, tokens: list[int],
                max_tokens: int | None) -> RequestRecord:
    room = fe.max_model_len - len(tokens)
    if room < 1:
        raise ApiError(400, f"This model's maximum context length is {fe.max_model_len} tokens. "
                       f"However, your prompt has {len(tokens)} tokens.", "messages")
    if max_tokens is not None and max_tokens > room:
        raise ApiError(400, f"This model's maximum context length is {fe.max_model_len} tokens. "
                       f"However, you requested {len(tokens) + max_tokens} tokens "
                       f"({len(tokens)} in the messages, {max_tokens} in the completion).",
                       "max_tokens")
    namespace = request.headers.get("x-supernode-namespace", "")
    return RequestRecord(
        request_id=uuid.uuid4().hex,  # never the client's id: two requests may share one
        prompt_token_ids=tokens, max_tokens=max_tokens or room,
        seed=body.seed if body.seed is not None else random.getrandbits(48),
        ignore_eos=body.ignore_eos, eos_token_id=fe.tokenizer.eos_token_id, cache_namespace=f"{fe.model_name}/{namespace}",
        arrived_at=time.monotonic())


async def _generate(fe: FrontEnd, request: Request, kind: Kind, body: Any, tokens: list[int],
                    max_tokens: int | None) -> Response:
    record = _new_record(fe, request, body, tokens, max_tokens)
    try:
        fe.flow.check_pools()
        fe.flow.check_fits(record)
    except NoWorkers as e:
        fe.metrics.failed.labels(**fe.metrics.labels, status="503").inc()
        raise ApiError(503, str(e), retry_after_s=1.0) from None
    except RequestTooLarge as e:
        raise ApiError(400, str(e), "max_tokens") from None
    m = fe.metrics
    m.prompt_len.labels(**m.labels).observe(len(tokens))
    m.max_tokens.labels(**m.labels).observe(record.max_tokens)
    response_id = f"{kind.id_prefix}{record.request_id}"
    created = int(time.time())
    headers = {"x-request-id": request.headers.get("x-request-id") or record.request_id}
    if body.stream:
        writer = ChunkWriter(kind, response_id, created, fe.model_name, body.include_usage)
        return StreamingResponse(_stream(fe, record, writer, body), headers=headers,
                                 media_type="text/event-stream")
    text: list[str] = []
    try:
        async for piece, _ in _texts(fe, record, body.stop_strings()):
            text.append(piece)
    except (NoWorkers, RequestFailed) as e:
        m.failed.labels(**m.labels, status="503").inc()
        raise ApiError(503, str(e), retry_after_s=1.0) from None
    return JSONResponse(full_response(kind, response_id, created, fe.model_name, "".join(text),
                                      record.finish_reason, record), headers=headers)


async def _stream(fe: FrontEnd, record: RequestRecord, writer: ChunkWriter, body: Any
                  ) -> AsyncIterator[str]:
    try:
        async with contextlib.aclosing(_texts(fe, record, body.stop_strings())) as texts:
            async for piece, finish in texts:
                yield writer.content(piece, finish)
    except (NoWorkers, RequestFailed) as e:
        fe.metrics.failed.labels(**fe.metrics.labels, status="503").inc()
        yield writer.error(str(e), 503)
        yield writer.DONE
        return
    if body.include_usage:
        yield writer.usage_chunk(record)
    yield writer.DONE


async def _texts(fe: FrontEnd, record: RequestRecord, stops: list[str]
                 ) -> AsyncIterator[tuple[str, str | None]]:
    """(text delta, finish_reason) per emission, cut at stop strings; records metrics at the end."""
    matcher = StopMatcher(stops)
    decode_token = fe.tokenizer.decode_token
    generation = fe.flow.run(record)
    try:
        async for emitted in generation:
            piece, stopped = matcher.add("".join(map(decode_token, emitted.token_ids)))
            finish = "stop" if stopped else emitted.finish_reason
            if finish and not stopped:
                piece += matcher.flush()
            if record.first_token_at is not None and len(record.output_token_ids) == len(
                    emitted.token_ids):
                _observe_ttft(fe, record)
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
        _observe_end(fe, record)


def _observe_ttft(fe: FrontEnd, record: RequestRecord) -> None:
    m = fe.metrics
    m.ttft.labels(**m.labels).observe((record.first_token_at - record.arrived_at) * fe.speedup)


def _observe_end(fe: FrontEnd, record: RequestRecord) -> None:
    m = fe.metrics
    reason = record.finish_reason or "abort"
    m.success.labels(**m.labels, finished_reason=reason).inc()
    if reason == "abort":
        return
    now = time.monotonic()
    m.e2e.labels(**m.labels).observe((now - record.arrived_at) * fe.speedup)
    n_out = len(record.output_token_ids)
    m.generation_len.labels(**m.labels).observe(n_out)
    if n_out > 1 and record.first_token_at is not None:
        m.request_tpot.labels(**m.labels).observe(
            (now - record.first_token_at) * fe.speedup / (n_out - 1))
