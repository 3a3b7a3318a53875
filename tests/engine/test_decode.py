"""Decode continuous batching: admission, KV accounting, chained MTP, finishing, O(1) steps."""

import numpy as np
import pytest

from supernode.engine.decode import (
    DecodeEngine,
    DecodeParams,
    DecodeRequest,
    FinishReason,
    StepRing,
    draw_plan,
)


def make_engine(max_num_seqs: int = 4, capacity: int = 10_000, mtp: int = 0,
                acceptance: float = 0.7, eos: float = 0.0) -> DecodeEngine:
    return DecodeEngine(max_num_seqs, capacity, DecodeParams(
        mtp_tokens=mtp, mtp_acceptance=acceptance, eos_probability=eos))


def req(i: int, prompt: int = 100, max_tokens: int = 10, ignore_eos: bool = True) -> DecodeRequest:
    return DecodeRequest(f"r{i}", prompt, max_tokens, num_generated=1, seed=i,
                         ignore_eos=ignore_eos)


def run_to_end(e: DecodeEngine) -> dict[str, list[int]]:
    """Step until nothing runs; each request's token counts per step."""
    counts: dict[str, list[int]] = {}
    e.schedule()
    while e.running:
        for out in e.step_outputs():
            counts.setdefault(out.request_id, []).append(out.num_tokens)
        e.complete_step()
        e.schedule()
    return counts


def test_admission_reserves_prompt_plus_max_tokens() -> None:
    """A request that would overflow the KV reservation is refused; finishing frees it."""
    e = make_engine(capacity=250)
    e.admit(req(0, prompt=100, max_tokens=20))
    assert e.kv_reserved_tokens == 120
    assert not e.can_admit(100, 40)
    with pytest.raises(ValueError, match="kv cache full"):
        e.admit(req(1, prompt=100, max_tokens=40))
    e.on_kv_arrived("r0")
    run_to_end(e)
    assert e.kv_reserved_tokens == 0 and e.can_admit(100, 40)
    assert e.kv_used_tokens() == 0


def test_requests_run_only_after_their_kv_arrives_and_batch_is_capped() -> None:
    """Pending requests wait for KV; the running batch never exceeds max_num_seqs, FIFO."""
    e = make_engine(max_num_seqs=2)
    for i in range(3):
        e.admit(req(i))
    assert e.schedule() == []
    for i in range(3):
        e.on_kv_arrived(f"r{i}")
    assert e.schedule() == ["r0", "r1"]
    assert e.num_waiting == 1


def test_length_finish_emits_exactly_max_tokens() -> None:
    """Counting the prefill's first token, a request emits exactly max_tokens in all, and the
    step that ends it says so."""
    e = make_engine(mtp=1, acceptance=1.0)
    e.admit(req(0, max_tokens=6))
    e.on_kv_arrived("r0")
    e.schedule()
    tokens, reasons, finished = 0, [], []
    while e.running:
        outputs = e.step_outputs()
        tokens += sum(o.num_tokens for o in outputs)
        reasons += [o.finish_reason for o in outputs]
        finished += e.complete_step().finished
    assert tokens == 5  # 1 came from prefill
    assert reasons[-1] == FinishReason.LENGTH and set(reasons[:-1]) == {None}
    assert [(f.request_id, f.num_generated, f.finish_reason) for f in finished] == [
        ("r0", 6, FinishReason.LENGTH)]


@pytest.mark.parametrize(("k", "a"), [(1, 0.7), (2, 0.7), (3, 0.5), (2, 0.0), (2, 1.0)])
def test_mtp_tokens_are_accepted_as_a_chain(k: int, a: float) -> None:
    """With k speculative tokens at acceptance a, a step yields 1 + a + ... + a^k tokens on
    average (token i only if tokens 1..i-1 were), never more than 1 + k."""
    e = make_engine(max_num_seqs=400, capacity=10**8, mtp=k, acceptance=a)
    for i in range(400):
        e.admit(req(i, max_tokens=10**4))
        e.on_kv_arrived(f"r{i}")
    e.schedule()
    counts = []
    for _ in range(25):
        counts += [o.num_tokens for o in e.step_outputs()]
        e.complete_step()
    expected = sum(a ** i for i in range(k + 1))
    assert np.mean(counts) == pytest.approx(expected, abs=0.03)
    assert max(counts) <= 1 + k and min(counts) >= 1


def test_eos_stops_requests_without_ignore_eos() -> None:
    """Without ignore_eos, EOS ends a request early with finish reason stop."""
    e = make_engine(eos=0.5)
    e.admit(req(0, max_tokens=1000, ignore_eos=False))
    e.on_kv_arrived("r0")
    e.schedule()
    last = None
    while e.running:
        (last,) = e.step_outputs()
        e.complete_step()
    assert last.finish_reason == FinishReason.STOP


def test_abort_frees_kv_in_every_stage() -> None:
    """Aborting a pending, ready or running request frees its reservation and KV, and takes
    its future tokens out of the batch."""
    e = make_engine(max_num_seqs=1)
    for i in range(3):
        e.admit(req(i))
    e.on_kv_arrived("r0")
    e.on_kv_arrived("r1")
    e.schedule()  # r0 running, r1 ready, r2 pending
    e.complete_step()
    assert all(e.abort(f"r{i}") for i in range(3))
    assert e.kv_reserved_tokens == 0 and e.kv_used_tokens() == 0 and not e.abort("r0")
    assert e.complete_step().num_tokens == 0


def test_same_seed_same_steps() -> None:
    """A request's token counts per step and its end are a function of its seed."""
    def run() -> dict[str, list[int]]:
        e = make_engine(mtp=2, eos=0.02)
        e.admit(req(5, max_tokens=300, ignore_eos=False))
        e.on_kv_arrived("r5")
        return run_to_end(e)

    assert run() == run()


def test_mean_kv_len_and_step_tokens_match_a_per_request_count() -> None:
    """The batch aggregates (mean context, tokens per step, KV held) equal what counting every
    request step by step gives, while requests join and leave at different steps."""
    e = make_engine(max_num_seqs=8, capacity=10**6, mtp=1, acceptance=0.6)
    kv = {}
    for i in range(12):
        e.admit(req(i, prompt=50 + 10 * i, max_tokens=5 + 3 * i))
        e.on_kv_arrived(f"r{i}")
    e.schedule()
    for r in e.running.values():
        kv[r.request.request_id] = r.request.kv_len
    while e.running:
        assert e.mean_kv_len() == pytest.approx(np.mean(list(kv.values())))
        outputs = e.step_outputs()
        outcome = e.complete_step()
        assert outcome.num_tokens == sum(o.num_tokens for o in outputs)
        for o in outputs:
            kv[o.request_id] += o.num_tokens
        for f in outcome.finished:
            del kv[f.request_id]
        for request_id in e.schedule():
            kv[request_id] = e.running[request_id, 0].request.kv_len
        assert e.kv_used_tokens() == sum(kv.values()) + sum(
            r.kv_len for r in e.ready.values())


def test_plan_length_and_reason() -> None:
    """A plan emits exactly the tokens left (LENGTH) or stops at its EOS token (STOP)."""
    params = DecodeParams(mtp_tokens=1, mtp_acceptance=0.7, eos_probability=0.0)
    plan = draw_plan(DecodeRequest("a", 10, 100, 1, seed=1, ignore_eos=True), params)
    assert plan.num_tokens == 99 and plan.finish_reason == FinishReason.LENGTH
    assert np.all(np.diff(plan.cum_tokens, prepend=0) >= 1)
    eos = DecodeParams(mtp_tokens=0, mtp_acceptance=0.7, eos_probability=0.9)
    plan = draw_plan(DecodeRequest("b", 10, 100, 1, seed=1), eos)
    assert plan.finish_reason == FinishReason.STOP and plan.num_tokens < 99


def test_step_ring_adds_pops_and_grows() -> None:
    """Amounts added for future steps come back at their steps, also past the initial size."""
    ring = StepRing(size=4)
    ring.add(0, np.array([1, 2, 3]))
    ring.add(2, np.array([10, 20, 30, 40, 50, 60]))
    assert [ring.pop(s) for s in range(8)] == [1, 2, 13, 20, 30, 40, 50, 60]
    with pytest.raises(ValueError):
        ring.add(3, np.array([1]))


def parallel(request_id: str = "p", prompt: int = 100, max_tokens: int = 10, n: int = 3,
             generated: int = 1) -> DecodeRequest:
    return DecodeRequest(request_id, prompt, max_tokens, num_generated=generated, seed=7,
                         ignore_eos=True, choices=tuple((i, generated) for i in range(n)))


def test_parallel_sampling_reserves_the_prompt_once_and_max_tokens_per_choice() -> None:
    """n choices hold prompt + n x max_tokens, as vLLM reserves them; too many for the KV or
    for the batch cap are refused."""
    e = make_engine(max_num_seqs=8, capacity=140)
    with pytest.raises(ValueError, match="kv cache full"):
        e.admit(parallel(n=5, max_tokens=10))  # 100 + 5 x 10 > 140
    e.admit(parallel(n=4, max_tokens=10))
    assert e.kv_reserved_tokens == 140 and e.kv_used_tokens() == 104
    big = make_engine(max_num_seqs=2, capacity=10_000)
    with pytest.raises(ValueError, match="batch cap"):
        big.admit(parallel(n=3))


def test_choices_join_together_share_the_prompt_and_end_on_their_own() -> None:
    """A request's choices join the batch at once (each a slot, each reading the whole
    prompt), draw their own plans, and free the prompt's KV with the last of them."""
    e = make_engine(max_num_seqs=3, capacity=10_000, eos=0.2)
    e.admit(DecodeRequest("p", 100, 40, num_generated=1, seed=7,
                          choices=((0, 1), (1, 1), (2, 1))))
    assert e.kv_reserved_tokens == 100 + 3 * 40
    e.admit(req(9, prompt=100, max_tokens=10))
    e.on_kv_arrived("p")
    e.on_kv_arrived("r9")
    assert e.schedule() == ["p"]  # r9 waits for a slot
    assert e.num_running == 3
    lengths: dict[int, int] = {0: 1, 1: 1, 2: 1}
    ends: list[tuple[int, bool]] = []
    while "p" in e:
        assert e.mean_kv_len() > 100  # every choice reads the prompt
        for out in e.step_outputs():
            if out.request_id == "p":
                lengths[out.index] += out.num_tokens
        outcome = e.complete_step()
        ends += [(f.index, f.last) for f in outcome.finished if f.request_id == "p"]
        for f in outcome.finished:
            if f.request_id == "p":
                assert f.num_generated == lengths[f.index]
        e.schedule()
    assert sorted(i for i, _ in ends) == [0, 1, 2]
    assert [last for _, last in ends].count(True) == 1 and ends[-1][1]
    assert len(set(lengths.values())) > 1  # their own seeds: different lengths
    assert e.kv_reserved_tokens == 110  # r9 alone
    run_to_end(e)
    assert e.kv_reserved_tokens == 0 and e.kv_used_tokens() == 0


def test_kv_held_counts_the_shared_prompt_once() -> None:
    """kv_used_tokens = prompt + each choice's tokens while the choices run."""
    e = make_engine(max_num_seqs=8, capacity=10_000)
    e.admit(parallel(n=3, prompt=100, max_tokens=6))
    assert e.kv_used_tokens() == 103
    e.on_kv_arrived("p")
    e.schedule()
    assert e.kv_used_tokens() == 103 and e.mean_kv_len() == 101
    e.complete_step()
    assert e.kv_used_tokens() == 106


def test_aborting_a_parallel_request_frees_every_choice() -> None:
    """An abort mid-run drops all its choices and every token of KV it held."""
    e = make_engine(max_num_seqs=8, capacity=10_000)
    e.admit(parallel(n=3, max_tokens=20))
    e.admit(req(1, max_tokens=20))
    for r in ("p", "r1"):
        e.on_kv_arrived(r)
    e.schedule()
    e.complete_step()
    assert e.abort("p") and "p" not in e and not e.abort("p")
    assert e.num_running == 1
    assert e.kv_reserved_tokens == 120 and e.kv_used_tokens() == 102
    run_to_end(e)
    assert e.kv_reserved_tokens == 0 and e.kv_used_tokens() == 0


def test_a_resumed_parallel_request_runs_only_its_unfinished_choices() -> None:
    """Resumed choices keep their indexes and counts; choice 0 of a request draws the same plan
    as the request alone would."""
    params = DecodeParams(mtp_tokens=1, mtp_acceptance=0.7, eos_probability=0.05)
    alone = draw_plan(DecodeRequest("a", 10, 100, 1, seed=3), params)
    first = draw_plan(DecodeRequest("a", 10, 100, 1, seed=3, choices=((0, 1), (1, 1))),
                      params, 0, 1)
    assert np.array_equal(alone.counts, first.counts)
    e = make_engine(max_num_seqs=8, capacity=10_000)
    e.admit(DecodeRequest("p", 100, 20, num_generated=1, seed=3, ignore_eos=True,
                          choices=((1, 7), (4, 12))))
    assert e.kv_reserved_tokens == 140 and e.kv_used_tokens() == 119
    e.on_kv_arrived("p")
    e.schedule()
    finished = {}
    while e.running:
        for f in e.complete_step().finished:
            finished[f.index] = f.num_generated
    assert finished == {1: 20, 4: 20} and e.num_steps == 13  # ignore_eos: to max_tokens
