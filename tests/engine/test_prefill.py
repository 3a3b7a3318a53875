"""Prefill token-budget batching."""

from supernode.engine.prefill import PrefillEngine, PrefillJob


def test_batches_pack_fcfs_under_the_budget() -> None:
    """Jobs are packed in arrival order until the next would exceed the budget."""
    e = PrefillEngine(max_num_batched_tokens=1000)
    for i, n in enumerate([400, 500, 300, 200]):
        e.add(PrefillJob(f"r{i}", n))
    assert [j.request_id for j in e.next_batch()] == ["r0", "r1"]
    assert [j.request_id for j in e.next_batch()] == ["r2", "r3"]
    assert e.next_batch() == []


def test_cached_tokens_do_not_count_against_the_budget() -> None:
    """Only uncached prompt tokens use the budget."""
    e = PrefillEngine(max_num_batched_tokens=1000)
    e.add(PrefillJob("a", 900, num_cached_tokens=600))
    e.add(PrefillJob("b", 700))
    assert len(e.next_batch()) == 2


def test_oversized_prompt_runs_alone() -> None:
    """A prompt larger than the whole budget still runs, by itself."""
    e = PrefillEngine(max_num_batched_tokens=100)
    e.add(PrefillJob("big", 500))
    e.add(PrefillJob("small", 10))
    assert [j.request_id for j in e.next_batch()] == ["big"]
    assert e.num_queued_tokens == 10


def test_abort_removes_a_queued_job() -> None:
    """An aborted job never reaches a batch."""
    e = PrefillEngine(100)
    e.add(PrefillJob("a", 10))
    assert e.abort("a") and not e.abort("a") and e.next_batch() == []


def test_a_job_queues_in_order_of_arrival() -> None:
    """A job that reached the worker after a later one takes its place by `arrived_at`."""
    e = PrefillEngine(max_num_batched_tokens=10_000)
    for request_id, at in (("a", 1.0), ("c", 3.0), ("b", 2.0), ("z", 0.5), ("d", 3.0)):
        e.add(PrefillJob(request_id, 100, 0, at))
    assert [j.request_id for j in e.waiting] == ["z", "a", "b", "c", "d"]
    assert [j.request_id for j in e.next_batch(arrived_by=2.0)] == ["z", "a", "b"]
