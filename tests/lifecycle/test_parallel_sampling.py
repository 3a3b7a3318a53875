"""Parallel sampling (n > 1) in the lifecycle: one prefill, n choices on one decode instance."""

from __future__ import annotations

import pytest

from supernode.config import ClusterConfig
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerRegistry
from supernode.lifecycle.errors import RequestTooLarge
from supernode.lifecycle.request import Request, RequestStatus
from supernode.lifecycle.scheduler import Lifecycle, PrefillResult

RESULT = PrefillResult(num_cached_tokens=0, queue_s=0.0, fetch_s=0.0, compute_s=0.1,
                       transfer_s=0.01, kv_num_bytes=1000)


def lifecycle(kv_capacity_tokens: int = 100_000, max_num_seqs: int = 16) -> Lifecycle:
    registry = WorkerRegistry(lease_s=float("inf"))
    registry.register(WorkerInfo("p0", WorkerKind.PREFILL, "x"), 0.0)
    registry.register(WorkerInfo("d0", WorkerKind.DECODE, "x",
                                 kv_capacity_tokens=kv_capacity_tokens,
                                 max_num_seqs=max_num_seqs), 0.0)
    return Lifecycle(ClusterConfig(), registry)


def request(n: int, max_tokens: int = 10, prompt: int = 100) -> Request:
    return Request("r", prompt, max_tokens, seed=1, arrived_at=0.0, n=n,
                   prompt_token_ids=list(range(prompt)), output_token_ids=[])


def lifecycle_rate(num_tokens: int) -> float:
    """The shedder's prefill token rate right after one prefill of `num_tokens` is sent."""
    lc, r = lifecycle(), request(1, prompt=num_tokens)
    lc.accept(r, 0.0)
    lc.choose_prefill(r, 0.0)
    return lc.shedder.prefill_token_rate(0.0)


def test_n_choices_are_made_at_construction() -> None:
    r = request(3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.output_token_ids == [] for c in r.choices)
    assert request(1).choices is None


def test_a_request_whose_choices_cannot_fit_is_refused_with_400() -> None:
    """prompt + n x max_tokens must fit one decode instance, and n its batch."""
    with pytest.raises(RequestTooLarge, match="n x max_tokens = 1100"):
        lifecycle(kv_capacity_tokens=1000).accept(request(4, max_tokens=250), 0.0)
    with pytest.raises(RequestTooLarge, match="n = 5 choices exceed"):
        lifecycle(max_num_seqs=4).accept(request(5), 0.0)
    lifecycle(kv_capacity_tokens=1000).accept(request(3, max_tokens=250), 0.0)


def test_the_prefill_samples_one_token_per_choice_and_decode_reserves_them_all() -> None:
    lc, r = lifecycle(), request(3, max_tokens=10)
    lc.accept(r, 0.0)
    admission = lc.decode_request(r)
    assert admission.choices == ((0, 1), (1, 1), (2, 1))
    assert admission.num_reserved_tokens == 100 + 3 * 10
    lc.choose_prefill(r, 0.0)
    assert lc.shedder.prefill_token_rate(0.0) == lifecycle_rate(100)  # the prompt, once
    assert lc.on_prefill_done(r, RESULT, 0.2) is None
    assert [c.num_tokens for c in r.choices] == [1, 1, 1] and r.num_output_tokens == 3


def test_the_request_ends_with_its_last_choice() -> None:
    lc, r = lifecycle(), request(2, max_tokens=10)
    lc.accept(r, 0.0)
    lc.choose_prefill(r, 0.0)
    lc.on_prefill_done(r, RESULT, 0.2)
    lc.on_tokens(r, 3, 0.05, "stop", index=1)
    assert r.finish_reason is None and [c.index for c in r.running_choices()] == [0]
    lc.on_tokens(r, 9, 0.2, "length", index=0)
    assert r.finish_reason == "length" and r.finished_on_decode
    assert r.num_output_tokens == 1 + 1 + 3 + 9
    assert r.modelled_tpot_s() == pytest.approx((0.2 / 9 + 0.05 / 3) / 2)
    assert lc.release(r, 1.0) is RequestStatus.FINISHED


def test_a_resume_prefills_the_prompt_and_each_running_choice() -> None:
    """After a lost decode, the new attempt recomputes the prompt once plus every running
    choice's own tokens; a finished choice is left out."""
    lc, r = lifecycle(), request(3, max_tokens=10)
    lc.accept(r, 0.0)
    lc.choose_prefill(r, 0.0)
    lc.on_prefill_done(r, RESULT, 0.2)
    for c in r.choices:
        c.output_token_ids.append(500 + c.index)
    lc.on_tokens(r, 2, 0.05, None, index=0)
    r.choices[0].output_token_ids += [7, 8]
    lc.on_tokens(r, 1, 0.05, "stop", index=2)
    assert r.num_resume_tokens == 3 + 1
    assert r.resume_token_ids() == list(range(100)) + [500, 7, 8, 501]
    assert lc.decode_request(r).choices == ((0, 4), (1, 2))


def test_a_choice_at_max_tokens_after_the_prefill_needs_no_decode_slot() -> None:
    lc, r = lifecycle(), request(2, max_tokens=3)
    lc.accept(r, 0.0)
    lc.choose_prefill(r, 0.0)
    lc.on_prefill_done(r, RESULT, 0.2)
    lc.on_tokens(r, 1, 0.05, None, index=1)  # choice 1 has 2 of 3: its next token is its last
    assert lc.decode_request(r).choices == ((0, 2),)
    one_token = request(3, max_tokens=1)
    lc2 = lifecycle()
    lc2.accept(one_token, 0.0)
    assert not lc2.needs_decode(one_token)
    lc2.choose_prefill(one_token, 0.0)
    assert lc2.on_prefill_done(one_token, RESULT, 0.2) == "length"
    assert one_token.num_output_tokens == 3
