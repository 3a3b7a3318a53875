"""Planned output: content whose tokens are known before decoding starts (a tool call, JSON).

A planned request runs with ignore_eos and max_tokens = min(the user's max_tokens, the plan's
length), so decode produces exactly the plan (EOS included) or a truncated prefix of it, as a
real server's would be cut by max_tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from supernode.text import chat
from supernode.text.sampler import Plan
from supernode.tokenizer import TextTokenizer


@dataclass(frozen=True)
class ToolCallPlan:
    """A plan whose tokens spell one tool call; `arguments_span` are the positions of the
    arguments' tokens (what the client sees, streamed as `function.arguments`)."""

    plan: Plan
    name: str
    arguments: str
    arguments_span: tuple[int, int]

    def arguments_upto(self, num_tokens: int) -> str:
        """The arguments text carried by the first `num_tokens` tokens."""
        start, end = self.arguments_span
        return "".join(self.plan.pieces[start:max(start, min(end, num_tokens))])


def _join(tokenizer: TextTokenizer, segments: Sequence[str]) -> tuple[Plan, list[int]]:
    """One plan from text segments tokenized separately, EOS last; returns segment starts."""
    ids: list[int] = []
    pieces: list[str] = []
    starts = []
    for segment in segments:
        starts.append(len(ids))
        for token, piece in tokenizer.encode_pieces(segment):
            ids.append(token)
            pieces.append(piece)
    starts.append(len(ids))
    ids.append(tokenizer.eos_token_id)
    pieces.append("")
    return Plan(tuple(ids), tuple(pieces)), starts


def content_plan(tokenizer: TextTokenizer, text: str) -> Plan:
    """`text` as the whole reply, then EOS."""
    return _join(tokenizer, [text])[0]


def tool_call_plan(tokenizer: TextTokenizer, template: str, name: str,
                   arguments: str) -> ToolCallPlan:
    """The tokens the model writes for one call of `name` in its chat format, then EOS:
    DeepSeek-R1's markers, or a `<tool_call>` JSON block for the other templates."""
    if template == "deepseek-r1":
        head = f"{chat.CALLS_BEGIN}{chat.CALL_BEGIN}function{chat.SEP}{name}\n```json\n"
        tail = f"\n```{chat.CALL_END}{chat.CALLS_END}"
    else:
        head = f'<tool_call>\n{{"name": "{name}", "arguments": '
        tail = "}\n</tool_call>"
    plan, starts = _join(tokenizer, [head, arguments, tail])
    return ToolCallPlan(plan, name, arguments, (starts[1], starts[2]))
