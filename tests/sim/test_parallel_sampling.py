"""The simulator carries parallel sampling (n > 1) as the live scheduler does."""

from __future__ import annotations

from collections.abc import Iterator

from supernode.config import load_config
from supernode.lifecycle.request import Request
from supernode.sim.driver import Observer, RequestSent, SimCluster
from supernode.sim.kernel import EventLoop, Scheduled


class Collect(Observer):
    def __init__(self) -> None:
        self.done: list[Request] = []
        self.tokens: dict[str, int] = {}

    def on_first_token(self, request: Request, now: float) -> None:
        self.tokens[request.request_id] = request.num_output_tokens

    def on_step_tokens(self, request: Request, num_tokens: int, now: float) -> None:
        self.tokens[request.request_id] += num_tokens

    def on_done(self, request: Request, now: float) -> Iterator[Scheduled]:
        self.done.append(request)
        return iter(())


def simulate(requests: list[Request], detailed: bool = True, **overrides: object) -> Collect:
    observer = Collect()
    cluster = SimCluster(load_config(None, overrides), observer, detailed=detailed)
    loop = EventLoop(cluster.handlers())
    for r in requests:
        loop.schedule(r.arrived_at, RequestSent(r))
    loop.run()
    return observer


def make(request_id: str, n: int, max_tokens: int = 64) -> Request:
    return Request(request_id, 2048, max_tokens, seed=11, arrived_at=0.0, n=n)


def test_choices_finish_on_their_own_and_the_request_with_the_last() -> None:
    """Each choice ends (EOS or max_tokens); usage counts every choice's tokens."""
    observed = simulate([make("a", 4)], **{"eos_probability": 0.05})
    (request,) = observed.done
    assert request.finish_reason in ("stop", "length") and not request.error
    counts = [c.num_tokens for c in request.choices]
    assert all(1 <= k <= 64 for k in counts) and len(set(counts)) > 1
    assert request.num_output_tokens == sum(counts) == observed.tokens["a"]


def test_n_choices_share_one_prefill_and_run_as_a_larger_batch() -> None:
    """One request with n = 8 prefills once (the same TTFT as n = 1, KV bytes sent once) and
    decodes as 8 sequences: slower per token than one sequence alone."""
    one = simulate([make("a", 1, 256)], detailed=False).done[0]
    eight = simulate([make("b", 8, 256)], detailed=False).done[0]
    assert eight.modelled_ttft_s == one.modelled_ttft_s
    assert eight.kv_num_bytes == one.kv_num_bytes
    assert eight.modelled_tpot_s() > one.modelled_tpot_s()
