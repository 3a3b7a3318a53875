"""Serving one OpenAI request: its choices' requests and samplers, their run through the
flow, and the reply (a whole response, or SSE chunks with choices interleaved by index).

Each prompt is one lifecycle `Request`; its `n` choices (parallel sampling) share its prefill
and each has its own `Sampler` and `Job`: with n > 1 one task reads the request's tokens and
hands each choice its own (`ChoiceFanout`). A batched /v1/completions request is accepted whole
or refused whole. The client's finish reason is the `Job`'s: the request keeps the lifecycle's
(stop, length, abort), so a tool call ends it with "stop".
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
from services.scheduler.arrival import arrived_at
from services.scheduler.flow import Emitted
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
from supernode.engine.decode import choice_seed
from supernode.engine.registry import WorkerKind, WorkerRegistry, WorkerState
from supernode.lifecycle.cache import cache_namespace
from supernode.lifecycle.errors import LifecycleError, NoWorkers, Overloaded, RequestTimedOut
from supernode.lifecycle.request import Request
from supernode.text.sampler import Sampler, SamplingParams, prompt_hash, prompt_logprobs

if TYPE_CHECKING:
    from services.scheduler.app import FrontEnd


@dataclass
class Job:
    """One choice of a response: its request (and its choice there, with n > 1), what its
    reply will be, and the finish reason the client sees (the request's own is the engine's:
    stop, length or abort)."""

    index: int
    record: Request
    output: OutputPlan
    echo_text: str | None = None
    finish_reason: str | None = None
    choice: int = 0
    """Its index among its request's choices."""
    fanout: ChoiceFanout | None = None
    """Where its tokens come from when its request has several choices."""

    @property
    def sampler(self) -> Sampler:
        owner = self.record if self.record.choices is None else self.record.choices[self.choice]
        assert owner.sampler is not None
        return owner.sampler  # type: ignore[return-value]

    @property
    def output_token_ids(self) -> list[int]:
        if self.record.choices is None:
            return self.record.output_token_ids or []
        return self.record.choices[self.choice].output_token_ids or []

    @property
    def num_tokens(self) -> int:
        """Output tokens of this choice so far."""
        if self.record.choices is None:
            return self.record.num_output_tokens
        return self.record.choices[self.choice].num_tokens


def new_jobs(fe: FrontEnd, request: HttpRequest, body: Any, tokens: list[int],
             max_tokens: int | None, first_index: int) -> list[Job]:
    """The `body.n` choices of one prompt, `tokens`, indexed from `first_index`: one request
    (one prefill), each choice's reply planned and its sampler seeded (the request's seed,
    else the prompt's hash when greedy; choice i > 0 with `choice_seed`)."""
    temperature = 1.0 if body.temperature is None else body.temperature
    seed = body.internal_seed()
    if seed is None:  # greedy output depends on the prompt alone
        seed = prompt_hash(tokens) if temperature == 0 else random.getrandbits(63)
    output = plan_output(fe.tokenizer, fe.chat_template, body, seed)
    record = _new_record(fe, request, body, tokens, max_tokens, seed, output)

    def sampler(choice_seed_: int) -> Sampler:
        return Sampler(
            fe.tokenizer.word_ids, fe.tokenizer.eos_token_id, fe.tokenizer.token_bytes,
            prompt_token_ids=tokens, seed=choice_seed_, plan=output.plan,
            num_top_logprobs=body.num_top_logprobs(),
            params=SamplingParams(temperature, body.top_p or 1.0, body.top_k or 0,
                                  body.min_p or 0))

    if record.choices is None:
        record.sampler = sampler(seed)
        return [Job(first_index, record, output)]
    fanout = ChoiceFanout(fe, record)
    jobs = []
    for choice in record.choices:  # greedy choices are alike, as a real model's would be
        choice.sampler = sampler(seed if temperature == 0 else choice_seed(seed, choice.index))
        jobs.append(Job(first_index + choice.index, record, output, choice=choice.index,
                        fanout=fanout))
    return jobs


class ChoiceFanout:
    """A request with several choices: one task runs it through the flow and hands each
    choice's tokens to that choice's reader. When every choice has ended for the client, or
    a reader went away, the run ends (decode drops what is left)."""

    def __init__(self, fe: FrontEnd, record: Request) -> None:
        assert record.choices is not None
        self.fe, self.record = fe, record
        self._queues: dict[int, asyncio.Queue[Emitted | BaseException | None]] = {
            c.index: asyncio.Queue() for c in record.choices}
        self._open = set(self._queues)
        self._task: asyncio.Task[None] | None = None

    async def emissions(self, index: int) -> AsyncIterator[Emitted]:
        """Choice `index`'s tokens until its end (the run starts with the first reader)."""
        if self._task is None:
            self._task = asyncio.create_task(self._pump())
        queue = self._queues[index]
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self, index: int, finish_reason: str | None) -> None:
        """Choice `index`'s reader is done: its choice ended (`finish_reason`: told to the
        lifecycle when decode has not ended it yet) or its reader went away (None)."""
        if finish_reason is not None and self.record.finish_reason is None:
            self.fe.flow.end_choice(self.record, index, finish_reason)
        self._open.discard(index)
        if not self._open and self._task is not None:
            self._task.cancel()

    async def _pump(self) -> None:
        generation = self.fe.flow.run(self.record)
        try:
            async for emitted in generation:
                if emitted.index in self._open:
                    self._queues[emitted.index].put_nowait(emitted)
            end: BaseException | None = None
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the lifecycle gave up: every reader hears why
            end = e
        finally:
            await generation.aclose()
        for queue in self._queues.values():
            queue.put_nowait(end)


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
        arrived_at=arrived_at(request), ignore_eos=ignore_eos, model=body.model,
        cache_namespace=cache_namespace(body.model, auth.tenant_namespace(request)),
        prompt_token_ids=tokens, output_token_ids=[], n=body.n)


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


def _records(jobs: list[Job]) -> list[Request]:
    """The response's requests, once each (a prompt's n choices share one)."""
    return list({id(j.record): j.record for j in jobs}.values())


def _accept(fe: FrontEnd, jobs: list[Job]) -> None:
    """Take every request of a response into the lifecycle, or none of them."""
    accepted: list[Request] = []
    try:
        for record in _records(jobs):
            fe.flow.accept(record)
            accepted.append(record)
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
    records = _records(jobs)
    for record in records:
        m.prompt_len.labels(**m.labels).observe(record.num_prompt_tokens)
        m.max_tokens.labels(**m.labels).observe(record.max_tokens)
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
                                      records), headers=headers)


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
    sampler, lp = job.sampler, None
    if sampler.num_top_logprobs is not None:
        lp = _logprobs(fe, job, body, sampler.logprobs, job.output_token_ids, True)
    tool = None
    if job.output.tool is not None:
        tool = ToolCallOut(job.output.tool_call_id, job.output.tool.name,
                           job.output.tool.arguments_upto(job.num_tokens))
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
        yield writer.usage_chunk(_records(jobs))
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
    sampler = job.sampler
    with_lp = sampler.num_top_logprobs is not None
    if job.echo_text is not None:
        lp = _logprobs(fe, job, body, [], [], True) if with_lp else None
        yield writer.content(job.echo_text, None, index, lp)
    sent_args, named = "", False
    call = ToolCallOut(job.output.tool_call_id, tool.name, "") if tool is not None else None
    async with contextlib.aclosing(_texts(fe, job, body.stop_strings())) as texts:
        async for piece, finish, ids in texts:
            details = emulator_details(record) if finish else None
            if tool is not None and call is not None:
                args = tool.arguments_upto(job.num_tokens)
                if not named or args != sent_args or finish:
                    yield writer.tool_call(index, call, args[len(sent_args):], not named,
                                           finish, details)
                    named, sent_args = True, args
                continue
            lp = None
            if with_lp:
                end = job.num_tokens
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
    sampler = job.sampler
    plan = job.output.plan
    fanout = job.fanout
    generation = fe.flow.run(record) if fanout is None else fanout.emissions(job.choice)
    finish: str | None = None
    try:
        async for emitted in generation:
            piece, stopped = matcher.add(sampler.render(emitted.token_ids))
            finish = "stop" if stopped else emitted.finish_reason
            if finish and not stopped:
                piece += matcher.flush()
                if plan is not None and job.num_tokens >= len(plan):
                    finish = job.output.planned_finish
            if finish:
                job.finish_reason = finish
                if fanout is None:
                    record.finish_reason = "stop" if finish == "tool_calls" else finish
            yield piece, finish, emitted.token_ids
            if finish:
                break
    except BaseException:
        if fanout is None and record.finish_reason is None:
            record.finish_reason = "abort"
        raise
    finally:
        await generation.aclose()
        if fanout is not None:
            fanout.close(job.choice, finish)
