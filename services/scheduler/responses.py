"""Turning emitted tokens into OpenAI response bodies and SSE chunks (chat and completions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from supernode.lifecycle.request import Request

ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 408: "TimeoutError",
               413: "BadRequestError", 429: "RateLimitError", 500: "InternalServerError",
               503: "ServiceUnavailableError"}
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


def usage(record: Request) -> dict[str, Any]:
    n_out = record.num_output_tokens
    return {"prompt_tokens": record.num_prompt_tokens, "completion_tokens": n_out,
            "total_tokens": record.num_prompt_tokens + n_out,
            "prompt_tokens_details": {"cached_tokens": record.num_cached_tokens}}


def emulator_details(record: Request) -> dict[str, Any]:
    """supernode's own extension: where the request ran and what the model said it takes."""
    return record.details()


def full_response(kind: Kind, response_id: str, created: int, model: str, text: str,
                  finish_reason: str | None, record: Request) -> dict[str, Any]:
    if kind.chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "logprobs": None, "finish_reason": finish_reason}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    return {"id": response_id, "object": kind.object, "created": created, "model": model,
            "choices": [choice], "usage": usage(record), "supernode": emulator_details(record)}


class ChunkWriter:
    """Pre-rendered SSE chunk framing for one streaming response (the hot path)."""

    def __init__(self, kind: Kind, response_id: str, created: int, model: str,
                 include_usage: bool) -> None:
        self.kind = kind
        head = {"id": response_id, "object": kind.chunk_object, "created": created,
                "model": model}
        self._head = json.dumps(head, separators=(",", ":"))[:-1]
        self._tail = ',"usage":null}' if include_usage else "}"
        self._first = True

    def content(self, text: str, finish_reason: str | None) -> str:
        finish = "null" if finish_reason is None else json.dumps(finish_reason)
        if self.kind.chat:
            role = '"role":"assistant",' if self._first else ""
            choice = (f'{{"index":0,"delta":{{{role}"content":{json.dumps(text)}}},'
                      f'"logprobs":null,"finish_reason":{finish}}}')
        else:
            choice = (f'{{"index":0,"text":{json.dumps(text)},"logprobs":null,'
                      f'"finish_reason":{finish}}}')
        self._first = False
        return f'data: {self._head},"choices":[{choice}]{self._tail}\n\n'

    def usage_chunk(self, record: Request) -> str:
        body = json.dumps({"choices": [], "usage": usage(record),
                           "supernode": emulator_details(record)}, separators=(",", ":"))
        return f"data: {self._head},{body[1:]}\n\n"

    @staticmethod
    def error(message: str, status: int) -> str:
        body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "Error"),
                          "param": None, "code": status}}
        return f"data: {json.dumps(body)}\n\n"

    DONE = "data: [DONE]\n\n"
