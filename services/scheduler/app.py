"""The OpenAI-compatible HTTP front end of the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.metrics_http import CONTENT_TYPE as METRICS_CONTENT_TYPE
from services.common.metrics_http import exposition
from services.scheduler.flow import NoWorkers, RequestFailed, RequestFlow, RequestTooLarge
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
from services.scheduler.outputs import OutputPlan, plan_output
from services.scheduler.prompts import chat_ids, text_ids
from services.scheduler.responses import (
    CHAT,
    COMPLETION,
    ChoiceOut,
    ChunkWriter,
    Kind,
    LogprobFormat,
    StopMatcher,
    ToolCallOut,
    emulator_details,
    full_response,
)
from supernode.config import ApiConfig
from supernode.engine.registry import WorkerKind, WorkerRegistry
from supernode.engine.request import RequestRecord
from supernode.text.sampler import Sampler, SamplingParams, prompt_hash, prompt_logprobs
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
    chat_template: str = "deepseek-r1"
    limits: ApiConfig = dataclasses.field(default_factory=ApiConfig)


@dataclass
class Job:
    """One choice of a response: its request record and what its reply will be."""

    index: int
    record: RequestRecord
    output: OutputPlan
    echo_text: str | None = None


def build_app(fe: FrontEnd) -> FastAPI:
    app = FastAPI(title="supernode", docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimits, limits=fe.limits)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: f"route {request.url.path} not found",
                   405: f"method {request.method} not allowed on {request.url.path}"}
        return ApiError(exc.status_code, message.get(exc.status_code, str(exc.detail)),
                        headers=dict(exc.headers or {})).response()

    @app.get("/health")
    async def health() -> Response:
        ok = all(fe.registry.live(k) for k in (WorkerKind.PREFILL, WorkerKind.DECODE))
        return JSONResponse({"status": "ok" if ok else "degraded",
                             "workers": {k.value: len(fe.registry.live(k)) for k in WorkerKind}},
                            status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(exposition(fe.prometheus), media_type=METRICS_CONTENT_TYPE)

    @app.get("/workers")
    async def workers() -> list[dict[str, Any]]:
        """The live registry: every worker's address, shape and last reported load."""
        return [{"worker_id": w.worker_id, "kind": w.kind.value, "address": w.address,
                 "metrics_address": w.metrics_address, "num_devices": w.num_devices,
                 "num_dies": w.num_dies, "kv_capacity_tokens": w.kv_capacity_tokens,
                 "num_inflight": w.num_inflight, "load": dataclasses.asdict(w.load)}
                for w in fe.registry.all()]

    @app.get("/sd/targets")
    async def sd_targets() -> list[dict[str, Any]]:
        """Prometheus http_sd: every registered worker's /metrics address."""
        return [{"targets": [w.metrics_address],
                 "labels": {"role": w.kind.value, "worker_id": w.worker_id}}
                for w in fe.registry.all() if w.metrics_address]

    add_info_routes(app, fe)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        _check_model(fe, body.model)
        check_request(body, fe.limits)
        jobs = []
        for index, prompt in enumerate(completion_prompts(body.prompt, fe.limits)):
            if isinstance(prompt, str):
                tokens = await text_ids(fe.tokenizer, fe.limits, prompt, True)
            else:
                check_token_ids(prompt, fe.tokenizer.vocab_size)
                tokens = prompt
            job = _new_job(fe, request, body, tokens, body.max_tokens, index)
            if body.echo:
                job.echo_text = prompt if isinstance(prompt, str) else \
                    fe.tokenizer.decode(prompt)
            jobs.append(job)
        return await _generate(fe, request, COMPLETION, body, jobs)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest, request: Request) -> Response:
        _check_model(fe, body.model)
        check_request(body, fe.limits)
        tokens = await chat_ids(fe.tokenizer, fe.limits, fe.chat_template, body.messages,
                                body.add_generation_prompt)
        job = _new_job(fe, request, body, tokens, body.requested_max_tokens(), 0)
        return await _generate(fe, request, CHAT, body, [job])

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
    if model != fe.model_name:
        raise ApiError(404, f"The model `{model}` does not exist.", "model")


def _new_job(fe: FrontEnd, request: Request, body: Any, tokens: list[int],
             max_tokens: int | None, index: int) -> Job:
    temperature = 1.0 if body.temperature is None else body.temperature
    seed = body.internal_seed()
    if seed is None:  # greedy output depends on the prompt alone
        seed = prompt_hash(tokens) if temperature == 0 else random.getrandbits(63)
    output = plan_output(fe.tokenizer, fe.chat_template, body, seed)
    record = _new_record(fe, request, body, tokens, max_tokens, seed, output)
    record.sampler = Sampler(
        fe.tokenizer.word_ids, fe.tokenizer.eos_token_id, fe.tokenizer.token_bytes,
        prompt_token_ids=tokens, seed=seed, plan=output.plan,
        num_top_logprobs=body.num_top_logprobs(),
        params=SamplingParams(temperature, body.top_p or 1.0, body.top_k or 0, body.min_p or 0))
    return Job(index, record, output)


def _new_record(fe: FrontEnd, request: Request, body: Any, tokens: list[int],
                max_tokens: int | None, seed: int, output: OutputPlan) -> RequestRecord:
    room = fe.max_model_len - len(tokens)
    if room < 1:
        raise ApiError(400, f"This model's maximum context length is {fe.max_model_len} tokens. "
                       f"However, your prompt has {len(tokens)} tokens.", "messages")
    if max_tokens is not None and max_tokens > room:
        raise ApiError(400, f"This model's maximum context length is {fe.max_model_len} tokens. "
                       f"However, you requested {len(tokens) + max_tokens} tokens "
                       f"({len(tokens)} in the messages, {max_tokens} in the completion).",
                       "max_tokens")
    ignore_eos = body.ignore_eos
    if output.plan is not None:  # decode produces exactly the plan, or max_tokens of it
        max_tokens = min(max_tokens or room, len(output.plan), room)
        ignore_eos = True
    namespace = request.headers.get("x-supernode-namespace", "")
    return RequestRecord(
        request_id=uuid.uuid4().hex,  # never the client's id: two requests may share one
        prompt_token_ids=tokens, max_tokens=max_tokens or room, seed=seed,
        ignore_eos=ignore_eos, eos_token_id=fe.tokenizer.eos_token_id,
        cache_namespace=f"{fe.model_name}/{namespace}", arrived_at=time.monotonic())


async def _generate(fe: FrontEnd, request: Request, kind: Kind, body: Any, jobs: list[Job]
                    ) -> Response:
    try:
        fe.flow.check_pools()
        for job in jobs:
            fe.flow.check_fits(job.record)
    except NoWorkers as e:
        fe.metrics.failed.labels(**fe.metrics.labels, status="503").inc()
        raise ApiError(503, str(e), retry_after_s=1.0) from None
    except RequestTooLarge as e:
        raise ApiError(400, str(e), "max_tokens") from None
    m = fe.metrics
    for job in jobs:
        m.prompt_len.labels(**m.labels).observe(job.record.num_prompt_tokens)
        m.max_tokens.labels(**m.labels).observe(job.record.max_tokens)
    response_id = f"{kind.id_prefix}{jobs[0].record.request_id}"
    created = int(time.time())
    headers = {"x-request-id": request.headers.get("x-request-id") or jobs[0].record.request_id}
    if body.stream:
        writer = ChunkWriter(kind, response_id, created, fe.model_name, body.include_usage)
        return StreamingResponse(_stream(fe, jobs, writer, body), headers=headers,
                                 media_type="text/event-stream")
    try:
        choices = await asyncio.gather(*(_collect(fe, job, body) for job in jobs))
    except (NoWorkers, RequestFailed) as e:
        m.failed.labels(**m.labels, status="503").inc()
        raise ApiError(503, str(e), retry_after_s=1.0) from None
    return JSONResponse(full_response(kind, response_id, created, fe.model_name, choices,
                                      [j.record for j in jobs]), headers=headers)


async def _collect(fe: FrontEnd, job: Job, body: Any) -> ChoiceOut:
    """Run one choice to the end; its text, finish reason, logprobs or tool call."""
    text: list[str] = []
    async for piece, _, _ in _texts(fe, job, body.stop_strings()):
        text.append(piece)
    record, lp = job.record, None
    if record.sampler is not None and record.sampler.num_top_logprobs is not None:
        lp = _logprobs(fe, job, body, record.sampler.logprobs, record.output_token_ids, True)
    tool = None
    if job.output.tool is not None:
        tool = ToolCallOut(job.output.tool_call_id, job.output.tool.name,
                           job.output.tool.arguments_upto(len(record.output_token_ids)))
    return ChoiceOut(job.index, (job.echo_text or "") + "".join(text), record.finish_reason,
                     lp, tool)


def _logprobs(fe: FrontEnd, job: Job, body: Any, entries: list[Any], token_ids: list[int],
              whole: bool) -> dict[str, Any]:
    fmt = LogprobFormat(fe.tokenizer.token_bytes)
    if isinstance(body, ChatCompletionRequest):
        return fmt.chat(entries)
    if whole and job.echo_text is not None:
        prompt = job.record.prompt_token_ids
        echoed = [None, *prompt_logprobs(fe.tokenizer.word_ids, prompt, body.logprobs or 0)]
        return fmt.completion(echoed + entries, list(prompt) + list(token_ids), 0)
    offset = len(job.echo_text or "") if whole else 0
    return fmt.completion(entries, token_ids, offset)


async def _stream(fe: FrontEnd, jobs: list[Job], writer: ChunkWriter, body: Any
                  ) -> AsyncIterator[str]:
    try:
        if len(jobs) == 1:
            async with contextlib.aclosing(_choice_chunks(fe, jobs[0], writer, body)) as chunks:
                async for chunk in chunks:
                    yield chunk
        else:
            async for chunk in _merged(fe, jobs, writer, body):
                yield chunk
    except (NoWorkers, RequestFailed) as e:
        fe.metrics.failed.labels(**fe.metrics.labels, status="503").inc()
        yield writer.error(str(e), 503)
        yield writer.DONE
        return
    if body.include_usage:
        yield writer.usage_chunk([j.record for j in jobs])
    yield writer.DONE


async def _merged(fe: FrontEnd, jobs: list[Job], writer: ChunkWriter, body: Any
                  ) -> AsyncIterator[str]:
    """A batch's choices run concurrently; their chunks interleave (told apart by index)."""
    queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()

    async def run(job: Job) -> None:
        try:
            async for chunk in _choice_chunks(fe, job, writer, body):
                queue.put_nowait(chunk)
            queue.put_nowait(None)
        except Exception as e:
            queue.put_nowait(e)

    tasks = [asyncio.create_task(run(job)) for job in jobs]
    try:
        for _ in jobs:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _choice_chunks(fe: FrontEnd, job: Job, writer: ChunkWriter, body: Any
                         ) -> AsyncIterator[str]:
    """The SSE chunks of one choice; its final chunk carries the `supernode` details."""
    record, index, tool = job.record, job.index, job.output.tool
    sampler = record.sampler
    with_lp = sampler is not None and sampler.num_top_logprobs is not None
    if job.echo_text is not None:
        lp = _logprobs(fe, job, body, [], [], True) if with_lp else None
        yield writer.content(job.echo_text, None, index, lp)
    sent_args, named = "", False
    call = ToolCallOut(job.output.tool_call_id, tool.name, "") if tool is not None else None
    async with contextlib.aclosing(_texts(fe, job, body.stop_strings())) as texts:
        async for piece, finish, ids in texts:
            details = emulator_details(record) if finish else None
            if tool is not None and call is not None:
                args = tool.arguments_upto(len(record.output_token_ids))
                if not named or args != sent_args or finish:
                    yield writer.tool_call(index, call, args[len(sent_args):], not named,
                                           finish, details)
                    named, sent_args = True, args
                continue
            lp = None
            if with_lp and sampler is not None:
                end = len(record.output_token_ids)
                lp = _logprobs(fe, job, body, sampler.logprobs[end - len(ids):end], list(ids),
                               False)
            yield writer.content(piece, finish, index, lp, details)


async def _texts(fe: FrontEnd, job: Job, stops: list[str]
                 ) -> AsyncIterator[tuple[str, str | None, tuple[int, ...]]]:
    """(text delta, finish_reason, token ids) per emission, cut at stop strings; records
    metrics at the end. A planned reply emitted whole finishes with its planned reason."""
    record = job.record
    matcher = StopMatcher(stops)
    sampler = record.sampler
    assert sampler is not None
    plan = job.output.plan
    generation = fe.flow.run(record)
    try:
        async for emitted in generation:
            piece, stopped = matcher.add(sampler.render(emitted.token_ids))
            finish = "stop" if stopped else emitted.finish_reason
            if finish and not stopped:
                piece += matcher.flush()
                if plan is not None and len(record.output_token_ids) >= len(plan):
                    finish = job.output.planned_finish
            if record.first_token_at is not None and len(record.output_token_ids) == len(
                    emitted.token_ids):
                _observe_ttft(fe, record)
            if finish:
                record.finish_reason = finish
            yield piece, finish, emitted.token_ids
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
    if reason == "tool_calls":
        reason = "stop"  # vLLM's finished_reason label values
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
