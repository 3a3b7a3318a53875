"""What a request's reply will be: free synthetic text, JSON (`response_format`) or a tool call.

Tool calls: `tool_choice` "required" or a named function always calls (the named one, or one
drawn from the seed); "auto" (the default when tools are given) calls a tool when the seed's
draw falls below `AUTO_TOOL_CALL_PROBABILITY`, so a request with a fixed seed, or at
temperature 0 (whose seed is the prompt's hash), always decides the same way; "none" never
calls. Arguments are JSON valid against the tool's `parameters` schema. A `json_object` /
`json_schema` response format makes the content JSON (valid against the schema when given).
Both are planned before decoding (supernode.text.plans).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from services.scheduler.openai_api import ApiError, ChatCompletionRequest, NamedToolChoice
from supernode.text.plans import ToolCallPlan, content_plan, tool_call_plan
from supernode.text.sampler import Plan
from supernode.text.structured import UnsupportedSchema, dumps, value_for_schema
from supernode.tokenizer import TextTokenizer

AUTO_TOOL_CALL_PROBABILITY = 0.5


@dataclass(frozen=True)
class OutputPlan:
    """The reply decided before decoding (None fields: free text)."""

    plan: Plan | None = None
    tool: ToolCallPlan | None = None
    tool_call_id: str = ""
    planned_finish: str = "stop"
    """finish_reason when the whole plan was emitted (shorter: "length")."""


FREE_TEXT = OutputPlan()


def plan_output(tokenizer: TextTokenizer, template: str, body: Any, seed: int) -> OutputPlan:
    """The reply's plan for `body` (chat or completion request); ApiError(400) when a schema
    cannot be honoured."""
    rng = random.Random(seed ^ 0x5EED)
    if isinstance(body, ChatCompletionRequest) and body.tools:
        tool = _choose_tool(body, rng)
        if tool is not None:
            try:
                args = value_for_schema(tool.function.parameters or {"type": "object"}, rng)
            except UnsupportedSchema as e:
                raise ApiError(400, f"tool {tool.function.name!r}: {e}", "tools") from None
            call = tool_call_plan(tokenizer, template, tool.function.name, dumps(args))
            return OutputPlan(call.plan, call, f"chatcmpl-tool-{uuid.uuid4().hex[:24]}",
                              "tool_calls")
    elif isinstance(body, ChatCompletionRequest) and body.tool_choice not in (None, "none",
                                                                                "auto"):
        raise ApiError(400, "tool_choice needs tools", "tool_choice")
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return FREE_TEXT
    schema: Any = {"type": "object"}
    if fmt.type == "json_schema":
        if fmt.json_schema is None or fmt.json_schema.json_schema is None:
            raise ApiError(400, "response_format json_schema needs json_schema.schema",
                           "response_format")
        schema = fmt.json_schema.json_schema
    try:
        value = value_for_schema(schema, rng)
    except UnsupportedSchema as e:
        raise ApiError(400, f"response_format: {e}", "response_format") from None
    return OutputPlan(content_plan(tokenizer, dumps(value)))


def _choose_tool(body: ChatCompletionRequest, rng: random.Random) -> Any:
    tools = body.tools or []
    choice = body.tool_choice
    if isinstance(choice, NamedToolChoice):
        named = [t for t in tools if t.function.name == choice.function.name]
        if not named:
            raise ApiError(400, f"tool_choice names {choice.function.name!r}, which is not "
                           "among the tools", "tool_choice")
        return named[0]
    if choice == "none":
        return None
    draw = rng.random()
    if choice in (None, "auto") and draw >= AUTO_TOOL_CALL_PROBABILITY:
        return None
    return tools[rng.randrange(len(tools))]
