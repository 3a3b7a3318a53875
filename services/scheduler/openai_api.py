"""OpenAI request schemas, validation and error bodies (the shape vLLM and OpenAI emit).

The models are the routes' declared bodies, so /openapi.json describes real requests. Fields
the emulator cannot honour are declared too, so that using them is a clear 400 rather than a
silent ignore (`unsupported`); sampling penalties are accepted and have no effect on the
synthetic text (docs/compatibility.md).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.scheduler.responses import ERROR_TYPES
from supernode.config import ApiConfig

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SEED_MODULUS = 2**63
"""Seeds are taken over vLLM's range (int64) and reduced modulo 2^63 to the internal seed."""


class ApiError(Exception):
    """An error the client sees as OpenAI's error JSON with `status`."""

    TYPES: ClassVar[dict[int, str]] = ERROR_TYPES

    def __init__(self, status: int, message: str, param: str | None = None,
                 retry_after_s: float | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.TYPES.get(self.status, "Error"),
                          "param": self.param, "code": self.status}}

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        if self.retry_after_s is not None:
            headers["retry-after"] = str(max(1, round(self.retry_after_s)))
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False
    continuous_usage_stats: bool = False


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = "response"
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    ignore_eos: bool = False
    user: str | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    repetition_penalty: float | None = Field(default=None, gt=0)
    logit_bias: dict[str, float] | None = None
    min_tokens: int | None = Field(default=None, ge=0)
    best_of: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None

    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def internal_seed(self) -> int | None:
        return None if self.seed is None else self.seed % SEED_MODULUS

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def num_top_logprobs(self) -> int | None:
        """Alternatives per token when logprobs are asked for; None when they are not."""
        raise NotImplementedError


class CompletionRequest(_Common):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0)
    suffix: str | None = None
    tools: list[Any] | None = None

    def num_top_logprobs(self) -> int | None:
        return self.logprobs


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    arguments: str | dict[str, Any] = ""


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedToolChoiceFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"] = "function"
    function: NamedToolChoiceFunction


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    echo: bool = False

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def num_top_logprobs(self) -> int | None:
        if not self.logprobs:
            if self.top_logprobs:
                raise ApiError(400, "top_logprobs needs logprobs: true", "top_logprobs")
            return None
        return self.top_logprobs or 0


class TokenizeCompletionRequest(BaseModel):
    """vLLM's POST /tokenize with a prompt."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    prompt: str
    add_special_tokens: bool = True
    return_token_strs: bool = False


class TokenizeChatRequest(BaseModel):
    """vLLM's POST /tokenize with chat messages."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    add_special_tokens: bool = False
    return_token_strs: bool = False
    tools: list[Tool] | None = None


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    tokens: list[int]


def check_request(request: _Common, limits: ApiConfig) -> None:
    """ApiError(400) for what the emulator refuses: unsupported fields and combinations,
    limits."""
    if request.n > limits.max_n:
        raise ApiError(400, f"n may be at most {limits.max_n}, got {request.n}", "n")
    if request.n > 1 and (_calls_tools(request) or _formats_json(request)):
        raise ApiError(400, "n > 1 with tools or a JSON response_format is not supported by "
                       "this emulator", "n")
    if request.best_of not in (None, 1):
        raise ApiError(400, "'best_of' is not supported by this emulator", "best_of")
    if request.logit_bias:
        raise ApiError(400, "'logit_bias' is not supported by this emulator (the output is "
                       "synthetic)", "logit_bias")
    if request.min_tokens:
        raise ApiError(400, "'min_tokens' is not supported by this emulator", "min_tokens")
    if request.stream_options and request.stream_options.continuous_usage_stats:
        raise ApiError(400, "'continuous_usage_stats' is not supported",
                       "stream_options.continuous_usage_stats")
    stops = request.stop_strings()
    if len(stops) > limits.max_stop_strings:
        raise ApiError(400, f"at most {limits.max_stop_strings} stop strings are allowed, got "
                       f"{len(stops)}", "stop")
    if any(len(s) > limits.max_stop_string_chars for s in stops):
        raise ApiError(400, f"a stop string may have at most {limits.max_stop_string_chars} "
                       "characters", "stop")
    top = request.num_top_logprobs()
    if top is not None and top > limits.max_logprobs:
        param = "top_logprobs" if isinstance(request, ChatCompletionRequest) else "logprobs"
        raise ApiError(400, f"at most {limits.max_logprobs} logprobs per token, got {top}",
                       param)
    if isinstance(request, CompletionRequest):
        if request.tools:
            raise ApiError(400, "tools are supported on /v1/chat/completions only", "tools")
        if request.suffix:
            raise ApiError(400, "'suffix' is not supported by this emulator", "suffix")
    else:
        if request.tools and len(request.tools) > limits.max_tools:
            raise ApiError(400, f"at most {limits.max_tools} tools are allowed", "tools")
        for name in ("continue_final_message", "echo"):
            if getattr(request, name):
                raise ApiError(400, f"'{name}' is not supported on chat by this emulator",
                               name)


def _calls_tools(request: _Common) -> bool:
    return (isinstance(request, ChatCompletionRequest) and bool(request.tools)
            and request.tool_choice != "none")


def _formats_json(request: _Common) -> bool:
    return request.response_format is not None and request.response_format.type != "text"


def completion_prompts(prompt: Any, limits: ApiConfig) -> list[str | list[int]]:
    """A completions `prompt` as a list of prompts (text or token ids), bounded in number."""
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise ApiError(400, "prompt must not be empty", "prompt")
    if isinstance(prompt[0], int):
        return [list(prompt)]
    if len(prompt) > limits.max_batch_prompts:
        raise ApiError(400, f"at most {limits.max_batch_prompts} prompts per request, got "
                       f"{len(prompt)}", "prompt")
    return [p if isinstance(p, str) else list(p) for p in prompt]


def check_token_ids(tokens: list[int], vocab_size: int, param: str = "prompt") -> None:
    if not tokens:
        raise ApiError(400, f"{param} must not be empty", param)
    low, high = min(tokens), max(tokens)  # C loops: a long id prompt costs little
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ApiError(400, f"token id {bad} is outside the vocabulary [0, {vocab_size})", param)


def message_dicts(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as plain dicts for a chat template."""
    return [m.model_dump(exclude_none=True) | {"content": m.content} for m in messages]
