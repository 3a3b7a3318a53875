"""A built-in deterministic tokenizer and synthetic text, so token counts are stable without downloads.

Text is split into pieces (words, single punctuation marks); each piece is one token. The
vocabulary's word tokens are synthetic syllable words that round-trip exactly (id -> word -> id);
any other piece maps to a word id through a stable hash. Generated text is a sequence of word
tokens drawn from a seeded generator, so the same seed gives the same text.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

log = logging.getLogger(__name__)
_PIECE = re.compile(r"\w+|[^\w\s]")
_SYLLABLES = tuple(c + v for c in "bdfgklmnprstvz" for v in "aeiou")  # 70 syllables
NUM_SPECIAL_TOKENS = 3  # 0 pad, 1 bos, 2 eos


class TextTokenizer(Protocol):
    """What the scheduler needs of a tokenizer."""

    vocab_size: int
    eos_token_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode_token(self, token_id: int) -> str: ...


@dataclass(frozen=True)
class Tokenizer:
    """Deterministic text <-> token-id mapping over a vocabulary of `vocab_size` ids."""

    vocab_size: int = 129_280
    eos_token_id: int = 2

    def __post_init__(self) -> None:
        if self.vocab_size <= NUM_SPECIAL_TOKENS + len(_SYLLABLES):
            raise ValueError(f"vocab_size too small: {self.vocab_size}")

    def encode(self, text: str) -> list[int]:
        return [self._piece_id(p) for p in _PIECE.findall(text)]

    def decode_token(self, token_id: int) -> str:
        """Text of one generated token, with its leading space."""
        return _token_text(token_id)

    def decode(self, token_ids: list[int]) -> str:
        return "".join(self.decode_token(t) for t in token_ids)

    def _piece_id(self, piece: str) -> int:
        index = _word_index(piece)
        num_words = self.vocab_size - NUM_SPECIAL_TOKENS
        if index is None or index >= num_words:
            digest = hashlib.blake2b(piece.encode(), digest_size=8).digest()
            index = int.from_bytes(digest, "little") % num_words
        return NUM_SPECIAL_TOKENS + index


class FileTokenizer:
    """A local Hugging Face `tokenizer.json` (needs the optional `tokenizers` package)."""

    def __init__(self, path: str) -> None:
        try:
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError as e:
            raise ValueError("tokenizer_path needs the 'tokenizers' package "
                             "(pip install 'supernode[tokenizer]')") from e
        try:
            self._tok = HFTokenizer.from_file(path)
        except Exception as e:  # tokenizers raises its own Exception type
            raise ValueError(f"cannot load tokenizer file {path!r}: {e}") from e
        self.vocab_size = self._tok.get_vocab_size()
        eos = next((self._tok.token_to_id(t) for t in ("</s>", "<|endoftext|>", "<eos>",
                                                        "<｜end▁of▁sentence｜>")
                    if self._tok.token_to_id(t) is not None), None)
        if eos is None:
            log.warning("tokenizer %s names no known EOS token; using id 0 as EOS", path)
        self.eos_token_id = eos if eos is not None else 0

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode_token(self, token_id: int) -> str:
        if token_id == self.eos_token_id:
            return ""
        return " " + self._tok.decode([token_id]).strip()


def make_tokenizer(path: str | None, vocab_size: int) -> TextTokenizer:
    """The built-in tokenizer over `vocab_size` ids, or a local tokenizer file when given."""
    return FileTokenizer(path) if path else Tokenizer(vocab_size=vocab_size)


def sample_token(rng: random.Random, vocab_size: int) -> int:
    """One synthetic output token id (never a special token)."""
    return rng.randrange(NUM_SPECIAL_TOKENS, vocab_size)


@lru_cache(maxsize=131_072)
def _token_text(token_id: int) -> str:
    if token_id < NUM_SPECIAL_TOKENS:
        return ""
    return " " + _word(token_id - NUM_SPECIAL_TOKENS)


def _word(index: int) -> str:
    """Bijective base-70 syllable spelling of `index` (index 0 -> 'ba')."""
    n = len(_SYLLABLES)
    parts = []
    index += 1
    while index > 0:
        index -= 1
        parts.append(_SYLLABLES[index % n])
        index //= n
    return "".join(reversed(parts))


def _word_index(piece: str) -> int | None:
    """Inverse of `_word`, or None when `piece` is not a synthetic word."""
    if len(piece) % 2 or not piece:
        return None
    n = len(_SYLLABLES)
    index = 0
    for i in range(0, len(piece), 2):
        try:
            digit = _SYLLABLE_INDEX[piece[i : i + 2]]
        except KeyError:
            return None
        index = index * n + digit + 1
    return index - 1


_SYLLABLE_INDEX = {s: i for i, s in enumerate(_SYLLABLES)}
