"""Chat templates: the prompt text a model's server builds from chat messages.

`render(messages, add_generation_prompt)` takes OpenAI-style messages as plain dicts (role,
content as text or a list of parts, tool_calls, ...) and returns the text the tokenizer counts,
so `usage.prompt_tokens` of a chat request is what that model's server reports.

- `deepseek-r1`: DeepSeek-R1's template (its tokenizer_config.json): BOS, the system prompts
  joined by blank lines, `<｜User｜>`/`<｜Assistant｜>` turns, earlier reasoning before
  `</think>` dropped, tool calls and outputs in DeepSeek's markers, and `<｜Assistant｜><think>\n`
  as the generation prompt. Like the original, it does not render `tools` definitions.
- `chatml` (Qwen) and `llama3`: the turn markers of those families; their tokenizers are not
  shipped, so the counts are the built-in estimate plus one token per marker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
CALLS_BEGIN, CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_BEGIN, CALL_END, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
OUTPUTS_BEGIN, OUTPUTS_END = "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>"
OUTPUT_BEGIN, OUTPUT_END = "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"


def text_of(content: Any) -> str:
    """A message's content as text: text parts joined by newlines (other parts ignored)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content
                     if isinstance(p, dict) and p.get("type") == "text")


def deepseek_tool_call(name: str, arguments: str) -> str:
    """One tool call as DeepSeek-R1 writes it (between the calls markers)."""
    return f"{CALL_BEGIN}function{SEP}{name}\n```json\n{arguments}\n```{CALL_END}"


def _deepseek_r1(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    system = "\n\n".join(text_of(m.get("content")) for m in messages if m["role"] == "system")
    out = [BOS, system]
    is_tool, first_output = False, True
    for m in messages:
        role, content = m["role"], m.get("content")
        if role == "user":
            is_tool = False
            out.append(USER + text_of(content))
        elif role == "assistant" and m.get("tool_calls"):
            is_tool = False
            calls = [deepseek_tool_call(c["function"]["name"], _arguments(c))
                     for c in m["tool_calls"]]
            head = ASSISTANT + (text_of(content) if content is not None else "")
            out.append(head + CALLS_BEGIN + "\n".join(calls) + CALLS_END + EOS)
        elif role == "assistant":
            text = text_of(content)
            if is_tool:
                out.append(OUTPUTS_END + text + EOS)
                is_tool = False
            else:
                out.append(ASSISTANT + text.split("</think>")[-1] + EOS)
        elif role == "tool":
            is_tool = True
            block = OUTPUT_BEGIN + text_of(content) + OUTPUT_END
            out.append((OUTPUTS_BEGIN + block) if first_output else ("\n" + block))
            first_output = False
    if is_tool:
        out.append(OUTPUTS_END)
    elif add_generation_prompt:
        out.append(ASSISTANT + "<think>\n")
    return "".join(out)


def _chatml(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    out = [f"<|im_start|>{m['role']}\n{_plain_content(m)}<|im_end|>\n" for m in messages]
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


def _llama3(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    out = ["<|begin_of_text|>"]
    out += [f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{_plain_content(m)}<|eot_id|>"
            for m in messages]
    if add_generation_prompt:
        out.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(out)


def _plain_content(m: Message) -> str:
    calls = m.get("tool_calls") or []
    return text_of(m.get("content")) + "".join(
        json.dumps({"name": c["function"]["name"], "arguments": _arguments(c)}) for c in calls)


def _arguments(call: Message) -> str:
    args = call["function"].get("arguments", "")
    return args if isinstance(args, str) else json.dumps(args)


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    render: Callable[[Sequence[Message], bool], str]
    specials: tuple[str, ...]
    """Markers the built-in tokenizer counts as one token each."""


TEMPLATES = {
    "deepseek-r1": ChatTemplate("deepseek-r1", _deepseek_r1, (
        BOS, EOS, USER, ASSISTANT, CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP,
        OUTPUTS_BEGIN, OUTPUTS_END, OUTPUT_BEGIN, OUTPUT_END, "<think>", "</think>")),
    "chatml": ChatTemplate("chatml", _chatml, ("<|im_start|>", "<|im_end|>", "<|endoftext|>")),
    "llama3": ChatTemplate("llama3", _llama3, (
        "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
}
