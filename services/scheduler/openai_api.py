"""OpenAI request schemas, validation and error bodies (the shape vLLM and OpenAI emit)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.scheduler.responses import ERROR_TYPES


class ApiError(Exception):
    """An error the client sees as OpenAI's error JSON with `status`."""

    TYPES: ClassVar[dict[int, str]] = ERROR_TYPES

    def __init__(self, status: int, message: str, param: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.TYPES.get(self.status, "Error"),
                          "param": self.param, "code": self.status}}

    def response(self) -> JSONResponse:
        headers = {}
        if self.retry_after_s is not None:
            headers["retry-after"] = str(max(1, round(self.retry_after_s)))
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    ignore_eos: bool = False
    user: str | None = None
    logprobs: int | bool | None = None
    top_logprobs: int | None = None
    best_of: int | None = None

    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_Common):
    prompt: str | list[int] | list[str] | list[list[int]]
    echo: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def parse_request(model: type[BaseModel], body: Any) -> Any:
    """Validate `body` against `model`; ApiError(400) naming the first bad field otherwise."""
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    try:
        request = model.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise ApiError(400, f"invalid value for '{param}': {first['msg']}", param) from None
    if request.n != 1:
        raise ApiError(400, "only n=1 is supported", "n")
    for name in ("echo", "logprobs", "top_logprobs", "best_of"):
        value = getattr(request, name, None)
        if value and not (name == "best_of" and value == 1):
            raise ApiError(400, f"'{name}' is not supported by this emulator "
                           f"(tokens are synthetic)", name)
    return request


def render_chat(messages: list[ChatMessage]) -> str:
    """The text the tokenizer sees for a chat: one 'role: content' line per message."""
    lines = []
    for message in messages:
        content = message.content
        if isinstance(content, list):
            content = " ".join(str(part.get("text", "")) for part in content
                               if part.get("type") == "text")
        lines.append(f"<|{message.role}|> {content or ''}")
    lines.append("<|assistant|>")
    return "\n".join(lines)


def completion_prompt_tokens(prompt: Any, encode: Any, vocab_size: int) -> list[int]:
    """Token ids of a completions `prompt`: text, token ids, or a batch of one of either."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (list, str)):
        if len(prompt) != 1:
            raise ApiError(400, "batched prompts are not supported; send one prompt", "prompt")
        prompt = prompt[0]
    if isinstance(prompt, str):
        tokens = encode(prompt)
    else:
        tokens = list(prompt)
        bad = next((t for t in tokens if not 0 <= t < vocab_size), None)
        if bad is not None:
            raise ApiError(400, f"token id {bad} is outside the vocabulary [0, {vocab_size})",
                           "prompt")
    if not tokens:
        raise ApiError(400, "prompt must not be empty", "prompt")
    return tokens
