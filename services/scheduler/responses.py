"""Turning emitted tokens into OpenAI response bodies and SSE chunks (chat and completions)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from supernode.lifecycle.request import Request
from supernode.text.sampler import TokenLogprob

ERROR_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError",
               405: "MethodNotAllowedError", 408: "TimeoutError", 413: "BadRequestError",
               415: "UnsupportedMediaTypeError", 429: "RateLimitError",
               500: "InternalServerError", 503: "ServiceUnavailableError"}
"""OpenAI's error `type` per HTTP status."""


@dataclass(frozen=True)
class Kind:
    """What differs between /v1/chat/completions and /v1/completions."""

    id_prefix: str
    object: str
    chunk_object: str
    chat: bool


CHAT = Kind("chatcmpl-", "chat.completion", "chat.completion.chunk", True)
COMPLETION = Kind("cmpl-", "text_completion", "text_completion", False)


class StopMatcher:
    """Cuts generated text at the first stop string, never leaking part of one.

    With stop strings, the last `longest stop - 1` characters are held back until the next
    piece shows they do not start a stop string (or `flush` at the end). Without stop strings
    every piece passes straight through and no text is kept (the common, hot case)."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.text = ""
        self.num_emitted = 0

    def add(self, piece: str) -> tuple[str, bool]:
        """Append `piece`; return the text now safe to emit and whether a stop string was hit."""
        if not self.stops:
            return piece, False
        search_from = max(0, len(self.text) - self.hold)
        self.text += piece
        hits = [i for stop in self.stops if (i := self.text.find(stop, search_from)) >= 0]
        if hits:
            cut = min(hits)
            out, self.num_emitted = self.text[self.num_emitted:cut], cut
            self.text = self.text[:cut]
            return out, True
        safe = max(self.num_emitted, len(self.text) - self.hold)
        out, self.num_emitted = self.text[self.num_emitted:safe], safe
        return out, False

    def flush(self) -> str:
        """The held-back tail, once the text has ended without a stop string."""
        out, self.num_emitted = self.text[self.num_emitted:], len(self.text)
        return out


def usage(records: Sequence[Request]) -> dict[str, Any]:
    """Usage of one request, or summed over a batch's requests."""
    n_in = sum(r.num_prompt_tokens for r in records)
    n_out = sum(r.num_output_tokens for r in records)
    return {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out,
            "prompt_tokens_details": {"cached_tokens": sum(r.num_cached_tokens
                                                           for r in records)}}


def emulator_details(record: Request) -> dict[str, Any]:
    """supernode's own extension: where the request ran and what the model said it takes."""
    return record.details()


@dataclass(frozen=True)
class ToolCallOut:
    id: str
    name: str
    arguments: str

    def full(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ChoiceOut:
    """One finished choice of a whole (non-streaming) response."""

    index: int
    text: str
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None
    tool_call: ToolCallOut | None = None


def full_response(kind: Kind, response_id: str, created: int, model: str,
                  choices: Sequence[ChoiceOut], records: Sequence[Request]
                  ) -> dict[str, Any]:
    """A whole response; `supernode` is one request's details, or a list for a batch."""
    out = []
    for c in choices:
        if kind.chat:
            message: dict[str, Any] = {"role": "assistant", "content": c.text}
            if c.tool_call is not None:
                message = {"role": "assistant", "content": None,
                           "tool_calls": [c.tool_call.full()]}
            out.append({"index": c.index, "message": message, "logprobs": c.logprobs,
                        "finish_reason": c.finish_reason})
        else:
            out.append({"index": c.index, "text": c.text, "logprobs": c.logprobs,
                        "finish_reason": c.finish_reason})
    details: Any = [emulator_details(r) for r in records]
    return {"id": response_id, "object": kind.object, "created": created, "model": model,
            "choices": out, "usage": usage(records),
            "supernode": details[0] if len(details) == 1 else details}


class LogprobFormat:
    """OpenAI's logprobs shapes from `TokenLogprob`s (chat: `content` entries; completions:
    parallel `tokens` / `token_logprobs` / `top_logprobs` / `text_offset` lists)."""

    def __init__(self, token_bytes: Callable[[int], bytes]) -> None:
        self.token_bytes = token_bytes

    def token(self, token_id: int) -> str:
        raw = self.token_bytes(token_id)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return "".join(f"bytes:\\x{b:02x}" for b in raw)

    def chat(self, entries: Sequence[TokenLogprob]) -> dict[str, Any]:
        def one(token_id: int, logprob: float) -> dict[str, Any]:
            return {"token": self.token(token_id), "logprob": logprob,
                    "bytes": list(self.token_bytes(token_id))}

        return {"content": [one(e.token_id, e.logprob) | {
            "top_logprobs": [one(t, lp) for t, lp in e.top]} for e in entries]}

    def completion(self, entries: Sequence[TokenLogprob | None], token_ids: Sequence[int],
                   text_offset: int) -> dict[str, Any]:
        """Completions logprobs; an entry None (the first echoed prompt token) has none."""
        tokens, offsets = [], []
        for token_id in token_ids:
            tokens.append(self.token(token_id))
            offsets.append(text_offset)
            text_offset += len(tokens[-1])
        return {"tokens": tokens,
                "token_logprobs": [None if e is None else e.logprob for e in entries],
                "top_logprobs": [None if e is None else {self.token(t): lp for t, lp in e.top}
                                 for e in entries],
                "text_offset": offsets}


class ChunkWriter:
    """Pre-rendered SSE chunk framing for one streaming response (the hot path)."""

    def __init__(self, kind: Kind, response_id: str, created: int, model: str,
                 include_usage: bool) -> None:
        self.kind = kind
        head = {"id": response_id, "object": kind.chunk_object, "created": created,
                "model": model}
        self._head = json.dumps(head, separators=(",", ":"))[:-1]
        self._tail = ',"usage":null}' if include_usage else "}"
        self._started: set[int] = set()

    def content(self, text: str, finish_reason: str | None, index: int = 0,
                logprobs: dict[str, Any] | None = None,
                details: dict[str, Any] | None = None) -> str:
        """One chunk of choice `index`; the final one (with `finish_reason`) carries the
        request's `details` (the `supernode` object)."""
        finish = "null" if finish_reason is None else json.dumps(finish_reason)
        lp = "null" if logprobs is None else json.dumps(logprobs, separators=(",", ":"))
        if self.kind.chat:
            role = '"role":"assistant",' if self._first(index) else ""
            choice = (f'{{"index":{index},"delta":{{{role}"content":{json.dumps(text)}}},'
                      f'"logprobs":{lp},"finish_reason":{finish}}}')
        else:
            choice = (f'{{"index":{index},"text":{json.dumps(text)},"logprobs":{lp},'
                      f'"finish_reason":{finish}}}')
        return self._chunk(choice, details)

    def tool_call(self, index: int, call: ToolCallOut, arguments: str, first: bool,
                  finish_reason: str | None, details: dict[str, Any] | None = None) -> str:
        """A tool-call delta: the first names the call; later ones add `arguments` text."""
        delta: dict[str, Any] = {"index": 0, "function": {"arguments": arguments}}
        if first:
            delta = {"index": 0, "id": call.id, "type": "function",
                     "function": {"name": call.name, "arguments": arguments}}
        message: dict[str, Any] = {"tool_calls": [delta]}
        if self._first(index):
            message = {"role": "assistant", "content": None, **message}
        choice = json.dumps({"index": index, "delta": message, "logprobs": None,
                             "finish_reason": finish_reason}, separators=(",", ":"))
        return self._chunk(choice, details)

    def usage_chunk(self, records: Sequence[Request]) -> str:
        """The include_usage chunk; it repeats the `supernode` details (a list for a batch)."""
        details: Any = [emulator_details(r) for r in records]
        body = json.dumps({"choices": [], "usage": usage(records),
                           "supernode": details[0] if len(details) == 1 else details},
                          separators=(",", ":"))
        return f"data: {self._head},{body[1:]}\n\n"

    def _first(self, index: int) -> bool:
        if index in self._started:
            return False
        self._started.add(index)
        return True

    def _chunk(self, choice: str, details: dict[str, Any] | None) -> str:
        extra = "" if details is None else \
            f',"supernode":{json.dumps(details, separators=(",", ":"))}'
        return f'data: {self._head},"choices":[{choice}]{extra}{self._tail}\n\n'

    @staticmethod
    def error(message: str, status: int) -> str:
        body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "Error"),
                          "param": None, "code": status}}
        return f"data: {json.dumps(body)}\n\n"

    DONE = "data: [DONE]\n\n"
