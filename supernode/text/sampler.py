"""The synthetic model's output for one request: which token ids it emits, and their text.

Workers only say how many tokens a step produced and whether the model emitted EOS; the
scheduler asks the request's `Sampler` for the ids (`next_ids`) and their text (`render`).

The synthetic model: at output position i its next-token distribution ranks `NUM_CANDIDATES`
word ids (a window of the tokenizer's `word_ids` at an offset drawn from a fixed shuffle by the
prompt's hash and i)
with Zipf probabilities p(r) ~ (r + 1)^-ZIPF_EXPONENT. Greedy decoding (temperature 0) takes
rank 0, so the same prompt gives the same text with no seed; temperature T samples from
p(r)^(1/T) (top_p, top_k and min_p truncate it), drawing from the request's seed. Reported
logprobs are the raw distribution's, before temperature (vLLM's default `raw_logprobs`).
Planned content (a tool call or JSON, known up front) is emitted as planned instead.
"""

from __future__ import annotations

import bisect
import codecs
import math
import random
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

NUM_CANDIDATES = 32
ZIPF_EXPONENT = 1.2
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Plan:
    """Content decided before decoding: its ids and the text each id stands for."""

    ids: tuple[int, ...]
    pieces: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    """0 or -1: no limit."""
    min_p: float = 0.0


@dataclass(frozen=True)
class TokenLogprob:
    """One emitted token's logprob and the most likely alternatives at its position."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...]


class Sampler:
    """Synthetic output ids and text of one request (one output sequence)."""

    def __init__(self, word_ids: Sequence[int], eos_token_id: int,
                 token_bytes: Callable[[int], bytes], *, prompt_token_ids: Sequence[int],
                 seed: int, params: SamplingParams = SamplingParams(),
                 plan: Plan | None = None, num_top_logprobs: int | None = None) -> None:
        """`num_top_logprobs`: record a `TokenLogprob` per emitted token with that many
        alternatives (None: record nothing)."""
        self.word_ids = word_ids
        self.eos_token_id = eos_token_id
        self.token_bytes = token_bytes
        self.context = prompt_hash(prompt_token_ids)
        self.params = params
        self.plan = plan
        self.num_top_logprobs = num_top_logprobs
        self.logprobs: list[TokenLogprob] = []
        self.num_emitted = 0
        self._rng = random.Random(seed)
        self._cdf = _cdf(params.temperature, params.top_p, params.top_k, params.min_p)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def next_ids(self, num_tokens: int, finish_reason: str | None) -> list[int]:
        """The next `num_tokens` ids; the last is EOS when `finish_reason` is "stop" (the
        model emitted EOS). Planned content comes out as planned, EOS included."""
        eos = finish_reason == "stop"
        if self.plan is None and self.num_top_logprobs is None and not eos:
            return self._free(num_tokens)  # the hot path: one call per streamed chunk
        return [self._next(eos and k == num_tokens - 1) for k in range(num_tokens)]

    def _free(self, num_tokens: int) -> list[int]:
        words, offsets, cdf, n = self.word_ids, _offsets(), self._cdf, len(self.word_ids)
        start, context = self.num_emitted, self.context
        self.num_emitted = start + num_tokens
        if cdf is None:
            return [words[(offsets[(context + p) % len(offsets)]) % n]
                    for p in range(start, start + num_tokens)]
        rand, total, last = self._rng.random, cdf[-1], len(cdf) - 1
        return [words[(offsets[(context + p) % len(offsets)]
                       + min(last, bisect.bisect_right(cdf, rand() * total))) % n]
                for p in range(start, start + num_tokens)]

    def render(self, ids: Sequence[int]) -> str:
        """Text of `ids`, the ids `next_ids` returned last, in order (UTF-8 decoded across
        calls; EOS and special tokens render as nothing)."""
        if self.plan is not None:
            start = self.num_emitted - len(ids)
            return "".join(self.plan.pieces[start:start + len(ids)])
        if len(ids) == 1:
            return self._decoder.decode(self.token_bytes(ids[0]))
        return self._decoder.decode(b"".join(map(self.token_bytes, ids)))

    def _next(self, eos: bool) -> int:
        position = self.num_emitted
        self.num_emitted += 1
        plan = self.plan
        if plan is not None and position < len(plan):
            token, rank = plan.ids[position], 0
        elif eos:
            token, rank = self.eos_token_id, 0
        else:
            cdf = self._cdf
            rank = 0 if cdf is None else min(len(cdf) - 1, bisect.bisect_right(
                cdf, self._rng.random() * cdf[-1]))
            token = self._candidate(position, rank)
        if self.num_top_logprobs is not None:
            self._record(position, token, rank)
        return token

    def _candidate(self, position: int, rank: int) -> int:
        words, offsets = self.word_ids, _offsets()
        return words[(offsets[(self.context + position) % len(offsets)] + rank) % len(words)]

    def _record(self, position: int, token: int, rank: int) -> None:
        """Keep the token's raw logprob and the top alternatives at its position; a sampled
        token outside them is listed first (as vLLM does)."""
        raw = _raw_logprobs()
        n = self.num_top_logprobs or 0
        top = [(token if r == rank else self._candidate(position, r), raw[r]) for r in range(n)]
        if rank >= n and n:
            top.insert(0, (token, raw[rank]))
        self.logprobs.append(TokenLogprob(token, raw[rank], tuple(top)))


def prompt_hash(token_ids: Sequence[int]) -> int:
    """A stable 32-bit digest of a prompt (the synthetic model's context)."""
    try:
        return zlib.crc32(array("I", token_ids).tobytes())
    except OverflowError:
        return zlib.crc32(repr(list(token_ids)).encode())


def _mix(x: int) -> int:
    """SplitMix64's finaliser: neighbouring positions get unrelated offsets."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@lru_cache(maxsize=1)
def _offsets() -> tuple[int, ...]:
    """A fixed shuffle of window offsets: position p of a prompt with hash h starts its
    candidate window at _offsets()[(h + p) % N], so neighbouring positions are unrelated."""
    table = list(range(1 << 16))
    random.Random(0x5EED).shuffle(table)
    return tuple(table)


@lru_cache(maxsize=1)
def _raw_logprobs() -> tuple[float, ...]:
    weights = [(r + 1) ** -ZIPF_EXPONENT for r in range(NUM_CANDIDATES)]
    log_total = math.log(sum(weights))
    return tuple(math.log(w) - log_total for w in weights)


@lru_cache(maxsize=256)
def _cdf(temperature: float, top_p: float, top_k: int, min_p: float) -> tuple[float, ...] | None:
    """Cumulative sampling weights over ranks (unnormalised); None for greedy."""
    if temperature <= 0:
        return None
    weights = [(r + 1) ** (-ZIPF_EXPONENT / temperature) for r in range(NUM_CANDIDATES)]
    if top_k > 0:
        weights = weights[:top_k]
    if min_p > 0:
        weights = [w for w in weights if w >= min_p * weights[0]]
    if top_p < 1:
        total, kept, acc = sum(weights), [], 0.0
        for w in weights:
            kept.append(w)
            acc += w
            if acc >= top_p * total:
                break
        weights = kept
    cdf, acc = [], 0.0
    for w in weights:
        acc += w
        cdf.append(acc)
    return tuple(cdf)


def prompt_logprobs(word_ids: Sequence[int], prompt_token_ids: Sequence[int],
                    num_top: int) -> list[TokenLogprob]:
    """Synthetic logprobs of prompt tokens 1.. (the first has none), for `echo`: each token
    gets a rank 0-7 hashed from its id and position."""
    raw = _raw_logprobs()
    out = []
    for position, token in enumerate(prompt_token_ids[1:], 1):
        rank = _mix(token ^ (position << 32)) % 8
        offset = _mix(position)
        top = [(token if r == rank else word_ids[(offset + r) % len(word_ids)], raw[r])
               for r in range(num_top)]
        if rank >= num_top and num_top:
            top.insert(0, (token, raw[rank]))
        out.append(TokenLogprob(token, raw[rank], tuple(top)))
    return out
