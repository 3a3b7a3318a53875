"""The built-in tokenizer: stable counts, exact round trips of generated text."""

import random

from supernode.tokenizer import NUM_SPECIAL_TOKENS, Tokenizer, sample_token


def test_encoding_is_deterministic_and_counts_pieces() -> None:
    """Each word and punctuation mark is one token; the same text always gives the same ids."""
    t = Tokenizer()
    ids = t.encode("Hello, world! How are you?")
    assert len(ids) == 8
    assert ids == Tokenizer().encode("Hello, world! How are you?")
    assert all(NUM_SPECIAL_TOKENS <= i < t.vocab_size for i in ids)


def test_generated_tokens_round_trip() -> None:
    """Text decoded from sampled ids encodes back to exactly those ids."""
    t = Tokenizer(vocab_size=129_280)
    rng = random.Random(7)
    ids = [sample_token(rng, t.vocab_size) for _ in range(500)]
    assert t.encode(t.decode(ids)) == ids


def test_special_tokens_render_as_nothing() -> None:
    """EOS has no text."""
    assert Tokenizer().decode_token(Tokenizer().eos_token_id) == ""
