"""Decode continuous batching: admission, KV accounting, MTP, finishing."""

import pytest

from supernode.engine.decode import DecodeEngine, DecodeParams, DecodeRequest, FinishReason


def make_engine(max_num_seqs: int = 4, capacity: int = 10_000, mtp: int = 0,
                acceptance: float = 0.7, eos: float = 0.0) -> DecodeEngine:
    return DecodeEngine(max_num_seqs, capacity, DecodeParams(
        mtp_tokens=mtp, mtp_acceptance=acceptance, eos_probability=eos, vocab_size=1000,
        eos_token_id=2))


def req(i: int, prompt: int = 100, max_tokens: int = 10, ignore_eos: bool = True) -> DecodeRequest:
    return DecodeRequest(f"r{i}", prompt, max_tokens, num_generated=1, seed=i,
                         ignore_eos=ignore_eos)


def test_admission_reserves_prompt_plus_max_tokens() -> None:
    """A request that would overflow the KV reservation is refused; finishing frees it."""
    e = make_engine(capacity=250)
    e.admit(req(0, prompt=100, max_tokens=20))
    assert e.kv_reserved_tokens == 120
    assert not e.can_admit(100, 40)
    with pytest.raises(ValueError, match="kv cache full"):
        e.admit(req(1, prompt=100, max_tokens=40))
    e.on_kv_arrived("r0")
    e.schedule()
    while e.running:
        e.complete_step()
    assert e.kv_reserved_tokens == 0 and e.can_admit(100, 40)


def test_requests_run_only_after_their_kv_arrives_and_batch_is_capped() -> None:
    """Pending requests wait for KV; the running batch never exceeds max_num_seqs."""
    e = make_engine(max_num_seqs=2)
    for i in range(3):
        e.admit(req(i))
    assert e.schedule() == []
    for i in range(3):
        e.on_kv_arrived(f"r{i}")
    assert [r.request_id for r in e.schedule()] == ["r0", "r1"]
    assert e.num_waiting == 1


def test_length_finish_emits_exactly_max_tokens() -> None:
    """Counting the prefill's first token, a request emits exactly max_tokens in all."""
    e = make_engine(mtp=1, acceptance=1.0)
    e.admit(req(0, max_tokens=6))
    e.on_kv_arrived("r0")
    e.schedule()
    tokens, reasons = [], []
    while e.running:
        for out in e.complete_step():
            tokens += out.token_ids
            reasons.append(out.finish_reason)
    assert len(tokens) == 5  # 1 came from prefill
    assert reasons[-1] == FinishReason.LENGTH and set(reasons[:-1]) == {None}


def test_mtp_acceptance_sets_tokens_per_step() -> None:
    """With one MTP token at acceptance p, a step yields 1 + p tokens on average."""
    e = make_engine(max_num_seqs=200, capacity=10**7, mtp=1, acceptance=0.7)
    for i in range(200):
        e.admit(req(i, max_tokens=10**4))
        e.on_kv_arrived(f"r{i}")
    e.schedule()
    counts = [len(o.token_ids) for _ in range(20) for o in e.complete_step()]
    assert sum(counts) / len(counts) == pytest.approx(1.7, abs=0.03)


def test_eos_stops_requests_without_ignore_eos() -> None:
    """Without ignore_eos, EOS ends a request early with finish reason stop."""
    e = make_engine(eos=0.5)
    e.admit(req(0, max_tokens=1000, ignore_eos=False))
    e.on_kv_arrived("r0")
    e.schedule()
    last = None
    while e.running:
        (last,) = e.complete_step()
    assert last.finish_reason == FinishReason.STOP and last.token_ids[-1] == 2


def test_abort_frees_kv_in_every_stage() -> None:
    """Aborting a pending, ready or running request frees its reservation."""
    e = make_engine(max_num_seqs=1)
    for i in range(3):
        e.admit(req(i))
    e.on_kv_arrived("r0")
    e.on_kv_arrived("r1")
    e.schedule()  # r0 running, r1 ready, r2 pending
    assert all(e.abort(f"r{i}") for i in range(3))
    assert e.kv_reserved_tokens == 0 and not e.abort("r0")


def test_same_seed_same_tokens() -> None:
    """Generation is deterministic for a seed."""
    def run() -> list[int]:
        e = make_engine(mtp=1)
        e.admit(req(5, max_tokens=30))
        e.on_kv_arrived("r5")
        e.schedule()
        out: list[int] = []
        while e.running:
            out += e.complete_step()[0].token_ids
        return out

    assert run() == run()
