"""Serving one OpenAI request: its choices' requests and samplers, their run through the
flow, and the reply (a whole response, or SSE chunks with choices interleaved by index).

Each choice is one lifecycle `Request` with its own `Sampler`; a batched /v1/completions
request is accepted whole or refused whole. The client's finish reason is the `Job`'s: the
request keeps the lifecycle's (stop, length, abort), so a tool call ends it with "stop".
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.scheduler import auth
from services.scheduler.openai_api import ApiError, ChatCompletionRequest
from services.scheduler.outputs import OutputPlan, plan_output
from services.scheduler.responses import (
    ChoiceOut,
    ChunkWriter,
    Kind,
    LogprobFormat,
    StopMatcher,
    ToolCallOut,
    emulator_details,
    full_response,
)
from supernode.engine.registry import WorkerKind, WorkerRegistry, WorkerState
from supernode.lifecycle.cache import cache_namespace
from supernode.lifecycle.errors import LifecycleError, NoWorkers, Overloaded, RequestTimedOut
from supernode.lifecycle.request import Request
from supernode.text.sampler import Sampler, SamplingParams, prompt_hash, prompt_logprobs

if TYPE_CHECKING:
    from services.scheduler.app import FrontEnd


@dataclass
class Job:
    """One choice of a response: its request, what its reply will be, and the finish reason
    the client sees (the request's own is the engine's: stop, length or abort)."""

    index: int
    record: Request
    output: OutputPlan
    echo_text: str | None = None
    finish_reason: str | None = None


def new_job(fe: FrontEnd, request: HttpRequest, body: Any, tokens: list[int],
            max_tokens: int | None, index: int) -> Job:
    """Choice `index` of a response to `body`, prompted with `tokens` (its reply planned,
    its sampler seeded: the request's seed, else the prompt's hash when greedy)."""
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


def _new_record(fe: FrontEnd, request: HttpRequest, body: Any, tokens: list[int],
                max_tokens: int | None, seed: int, output: OutputPlan) -> Request:
    max_model_len = fe.served()[body.model].max_model_len
    room = max_model_len - len(tokens)
    if room < 1:
        raise ApiError(400, f"This model's maximum context length is {max_model_len} tokens. "
                       f"However, your prompt has {len(tokens)} tokens.", "messages")
    if max_tokens is not None and max_tokens > room:
        raise ApiError(400, f"This model's maximum context length is {max_model_len} tokens. "
                       f"However, you requested {len(tokens) + max_tokens} tokens "
                       f"({len(tokens)} in the messages, {max_tokens} in the completion).",
                       "max_tokens")
    ignore_eos = body.ignore_eos
    if output.plan is not None:  # decode produces exactly the plan, or max_tokens of it
        max_tokens = min(max_tokens or room, len(output.plan), room)
        ignore_eos = True
    return Request(
        request_id=uuid.uuid4().hex,  # never the client's id: two requests may share one
        num_prompt_tokens=len(tokens), max_tokens=max_tokens or room, seed=seed,
        arrived_at=fe.flow.clock.now(), ignore_eos=ignore_eos, model=body.model,
        cache_namespace=cache_namespace(body.model, auth.tenant_namespace(request)),
        prompt_token_ids=tokens, output_token_ids=[])


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


def _accept(fe: FrontEnd, jobs: list[Job]) -> None:
    """Take every choice of a response into the lifecycle, or none of them."""
    accepted: list[Request] = []
    try:
        for job in jobs:
            fe.flow.accept(job.record)
            accepted.append(job.record)
    except LifecycleError as e:
        for record in accepted:
            fe.flow.discard(record)
        raise _api_error(fe, e) from None


async def generate(fe: FrontEnd, request: HttpRequest, kind: Kind, body: Any, jobs: list[Job]
                   ) -> Response:
    """Accept the jobs and answer: a whole response, or an SSE stream (4xx/5xx before any
    byte is sent when the lifecycle refuses them; a stream error event when it gives up)."""
    _accept(fe, jobs)
    m = fe.metrics
    for job in jobs:
        m.prompt_len.labels(**m.labels).observe(job.record.num_prompt_tokens)
        m.max_tokens.labels(**m.labels).observe(job.record.max_tokens)
    response_id = f"{kind.id_prefix}{jobs[0].record.request_id}"
    created = int(time.time())
    headers = {"x-request-id": request.headers.get("x-request-id") or jobs[0].record.request_id}
    if body.stream:
        writer = ChunkWriter(kind, response_id, created, body.model, body.include_usage)
        return StreamingResponse(_stream(fe, jobs, writer, body), headers=headers,
                                 media_type="text/event-stream")
    try:
        choices = await _collect_all(fe, jobs, body)
    except LifecycleError as e:
        raise _api_error(fe, e) from None
    return JSONResponse(full_response(kind, response_id, created, body.model, choices,
                                      [j.record for j in jobs]), headers=headers)


async def _collect_all(fe: FrontEnd, jobs: list[Job], body: Any) -> list[ChoiceOut]:
    """Every choice run to the end, concurrently; one failing ends the others."""
    if len(jobs) == 1:
        return [await _collect(fe, jobs[0], body)]
    tasks = [asyncio.create_task(_collect(fe, job, body)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
                           job.output.tool.arguments_upto(record.num_output_tokens))
    return ChoiceOut(job.index, (job.echo_text or "") + "".join(text), job.finish_reason,
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
    except LifecycleError as e:
        error = _api_error(fe, e)
        yield writer.error(error.message, error.status)
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
                args = tool.arguments_upto(record.num_output_tokens)
                if not named or args != sent_args or finish:
                    yield writer.tool_call(index, call, args[len(sent_args):], not named,
                                           finish, details)
                    named, sent_args = True, args
                continue
            lp = None
            if with_lp and sampler is not None:
                end = record.num_output_tokens
                lp = _logprobs(fe, job, body, sampler.logprobs[end - len(ids):end], list(ids),
                               False)
            yield writer.content(piece, finish, index, lp, details)


async def _texts(fe: FrontEnd, job: Job, stops: list[str]
                 ) -> AsyncIterator[tuple[str, str | None, tuple[int, ...]]]:
    """(text delta, finish_reason, token ids) per emission, cut at stop strings. A planned
    reply emitted whole finishes with its planned reason (the request itself with "stop":
    a model ends a tool call or JSON with EOS)."""
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
                if plan is not None and record.num_output_tokens >= len(plan):
                    finish = job.output.planned_finish
            if finish:
                job.finish_reason = finish
                record.finish_reason = "stop" if finish == "tool_calls" else finish
            yield piece, finish, emitted.token_ids
            if finish:
                break
    except BaseException:
        if record.finish_reason is None:
            record.finish_reason = "abort"
        raise
    finally:
        await generation.aclose()
