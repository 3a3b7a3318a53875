"""Prompt token ids of chat and completion requests (and /tokenize, which must agree).

Long prompts are rendered and encoded in a worker thread (the tokenizer releases the GIL), so
one huge prompt does not stall the event loop that serves every other stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from services.scheduler.openai_api import ChatMessage, message_dicts
from supernode.config import ApiConfig
from supernode.text.chat import TEMPLATES
from supernode.tokenizer import TextTokenizer

T = TypeVar("T")
INLINE_MESSAGES = 64
"""Chats with more messages than this are rendered off the event loop."""


async def _off_loop(inline: bool, fn: Callable[[], T]) -> T:
    return fn() if inline else await asyncio.to_thread(fn)


async def text_ids(tokenizer: TextTokenizer, limits: ApiConfig, text: str,
                   add_special_tokens: bool) -> list[int]:
    """Ids of a text prompt (completions and /tokenize add the model's BOS by default)."""
    return await _off_loop(len(text) <= limits.inline_tokenize_chars,
                           lambda: tokenizer.encode(text, add_special_tokens))


async def chat_ids(tokenizer: TextTokenizer, limits: ApiConfig, template: str,
                   messages: list[ChatMessage], add_generation_prompt: bool = True,
                   add_special_tokens: bool = False) -> list[int]:
    """Ids of a chat: the model's chat template rendered, then encoded (vLLM's order)."""
    render = TEMPLATES[template].render

    def work() -> list[int]:
        text = render(message_dicts(messages), add_generation_prompt)
        return tokenizer.encode(text, add_special_tokens)

    inline = len(messages) <= INLINE_MESSAGES and sum(
        _size(m.content) for m in messages) <= limits.inline_tokenize_chars
    return await _off_loop(inline, work)


def _size(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    return sum(len(str(part.get("text", ""))) for part in content if isinstance(part, dict))
