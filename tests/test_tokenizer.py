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


def test_a_local_tokenizer_file_is_used_when_given(tmp_path) -> None:
    """make_tokenizer loads a Hugging Face tokenizer.json and counts tokens with it."""
    tokenizers = __import__("pytest").importorskip("tokenizers")
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"<eos>": 0, "[UNK]": 1, "hello": 2, "world": 3}
    tok = tokenizers.Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    from supernode.tokenizer import make_tokenizer

    t = make_tokenizer(str(path), vocab_size=129_280)
    assert t.encode("hello world hello") == [2, 3, 2]
    assert t.vocab_size == 4 and t.eos_token_id == 0
    assert t.decode_token(3) == " world" and t.decode_token(0) == ""


def test_a_missing_tokenizer_file_is_a_clear_error(tmp_path) -> None:
    """A bad tokenizer path raises ValueError naming it."""
    import pytest

    from supernode.tokenizer import make_tokenizer

    pytest.importorskip("tokenizers")
    with pytest.raises(ValueError, match=r"nope\.json"):
        make_tokenizer(str(tmp_path / "nope.json"), 100)
