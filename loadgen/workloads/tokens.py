"""Synthetic token ids and their text rendering.

Ids are drawn from [1000, 30000), a range that holds ordinary tokens in common vocabularies
(no special tokens), so an id prompt is valid against a server whose tokenizer we do not know.
Text rendering maps each id to one common English word, which is one token in supernode's
built-in tokenizer and almost always one token in BPE vocabularies, so text prompts keep their
length closely.
"""

from __future__ import annotations

import numpy as np

TOKEN_ID_LOW = 1000
TOKEN_ID_HIGH = 30000

_WORD_TEXT = (
    "the of and to in is you that it he was for on are as with his they at be this have from "
    "or one had by word but not what all were we when your can said there use an each which "
    "she do how their if will up other about out many then them these so some her would make "
    "like him into time has look two more write go see number no way could people my than "
    "first water been call who oil its now find long down day did get come made may part over "
    "new sound take only little work know place year live me back give most very after thing "
    "our just name good sentence man think say great where help through much before line "
    "right too mean old any same tell boy follow came want show also around form three small "
    "set put end does another well large must big even such because turn here why ask went "
    "men read need land different home us move try kind hand picture again change off play "
    "spell air away animal house point page letter mother answer found study still learn "
    "should world high"
)
_WORDS = tuple(_WORD_TEXT.split())


def random_token_ids(rng: np.random.Generator, length: int) -> tuple[int, ...]:
    """`length` ids drawn uniformly from [TOKEN_ID_LOW, TOKEN_ID_HIGH)."""
    return tuple(rng.integers(TOKEN_ID_LOW, TOKEN_ID_HIGH, size=length).tolist())


def render_text(token_ids: tuple[int, ...]) -> str:
    """A text prompt with one common word per id; equal id prefixes give equal text prefixes."""
    return " ".join(_WORDS[t % len(_WORDS)] for t in token_ids)


def estimate_text_tokens(text: str) -> int:
    """Rough token count of English text (about 4 characters per token), at least 1."""
    return max(1, round(len(text) / 4))
