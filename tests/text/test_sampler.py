"""The synthetic model: ids chosen in the scheduler, greedy determinism, temperature, plans."""

from supernode.text.sampler import Plan, Sampler, SamplingParams, prompt_logprobs
from supernode.tokenizer import Tokenizer

TOK = Tokenizer()


def sampler(prompt=(5, 6, 7), seed=1, plan=None, top=None, **params) -> Sampler:
    return Sampler(TOK.word_ids, TOK.eos_token_id, TOK.token_bytes, prompt_token_ids=list(prompt),
                   seed=seed, params=SamplingParams(**params), plan=plan, num_top_logprobs=top)


def text(s: Sampler, n: int, finish: str | None = None) -> str:
    return s.render(s.next_ids(n, finish))


def test_greedy_depends_on_the_prompt_only() -> None:
    """Temperature 0 gives the same text for the same prompt whatever the seed, and another
    text for another prompt."""
    a = text(sampler(seed=1, temperature=0), 20)
    assert a == text(sampler(seed=99, temperature=0), 20)
    assert a != text(sampler(prompt=(5, 6, 8), temperature=0), 20)


def test_temperature_and_seed_change_the_text() -> None:
    """With a seed the text is reproducible; another temperature or seed changes it."""
    base = text(sampler(seed=3, temperature=0.8), 30)
    assert base == text(sampler(seed=3, temperature=0.8), 30)
    assert base != text(sampler(seed=3, temperature=1.5), 30)
    assert base != text(sampler(seed=4, temperature=0.8), 30)
    assert base != text(sampler(seed=3, temperature=0), 30)


def test_counts_and_eos() -> None:
    """next_ids returns as many ids as asked, the last one EOS when the model stopped; every
    other id is a word of the vocabulary, rendered with its leading space."""
    s = sampler(temperature=1.0)
    ids = s.next_ids(3, None) + s.next_ids(2, "stop")
    assert len(ids) == 5 and ids[-1] == TOK.eos_token_id
    assert all(i in TOK.word_ids for i in ids[:-1])
    assert len(sampler().render(ids).split()) == 4


def test_plans_are_emitted_as_planned() -> None:
    """A plan's ids come out in order across calls, with their own text."""
    plan = Plan((10, 11, 12, TOK.eos_token_id), ("{", '"a"', "}", ""))
    s = sampler(plan=plan)
    first, rest = s.next_ids(2, None), s.next_ids(2, None)
    assert first + rest == list(plan.ids)
    assert s.render(rest) == "}"


def test_logprobs_are_well_formed() -> None:
    """Each token gets a negative logprob and `top` alternatives in decreasing order, the
    greedy token first; prompt logprobs cover tokens 1.. of the prompt."""
    s = sampler(temperature=0, top=4)
    ids = s.next_ids(6, None)
    assert [e.token_id for e in s.logprobs] == ids
    for e in s.logprobs:
        assert e.logprob < 0 and len(e.top) == 4 and e.top[0][0] == e.token_id
        assert [lp for _, lp in e.top] == sorted((lp for _, lp in e.top), reverse=True)
    entries = prompt_logprobs(TOK.word_ids, [5, 6, 7], 2)
    assert [e.token_id for e in entries] == [6, 7]
