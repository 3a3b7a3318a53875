"""One benchmark point in virtual time: loadgen's samples and arrivals in, loadgen's outcome out.

Arrivals follow loadgen exactly (`schedule_offsets_s`, the same seed; a request waits for a
`max_concurrency` slot as the client would). Everything is in model seconds: the schedule's
offsets are model seconds, as they are for `supernode bench`, and results are reported in model
seconds, as `supernode bench --speedup S` reports them against `supernode up --speedup S`. The
config's `speedup` therefore changes nothing here: `supernode sim` predicts what `supernode
bench` reports against `supernode up` with the same config, whatever its speedup, as long as
bench is told that speedup. Warm-up requests are not simulated: a simulation has no cold start.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from loadgen.arrivals import schedule_offsets_s
from loadgen.config import LoadConfig
from loadgen.runner import OnResult, RunOutcome
from loadgen.types import RequestResult, SampleRequest
from supernode.cache.hashing import block_keys
from supernode.config import ClusterConfig
from supernode.models import load_model
from supernode.sim.cluster import RequestSent, SimCluster
from supernode.sim.kernel import EventLoop, Scheduled
from supernode.sim.request import SimRequest
from supernode.tokenizer import make_tokenizer


@dataclass(frozen=True)
class RequestReleased:
    """The client's schedule reached a sample (it may still wait for a concurrency slot)."""

    request: SimRequest


@dataclass
class SimStats:
    """How much work a run took: events handled and the model seconds simulated."""

    num_events: int = 0
    model_s: float = 0.0


class _Client:
    """The load generator's side: concurrency slots and the results, in sample order."""

    def __init__(self, num_samples: int, load: LoadConfig, on_result: OnResult | None) -> None:
        self.max_concurrency = load.max_concurrency
        self.on_result = on_result
        self.results: list[RequestResult | None] = [None] * num_samples
        self.num_in_flight = 0
        self.waiting: deque[SimRequest] = deque()

    def on_released(self, now: float, event: RequestReleased) -> Iterator[Scheduled]:
        if self.max_concurrency is not None and self.num_in_flight >= self.max_concurrency:
            self.waiting.append(event.request)
            return
        self.num_in_flight += 1
        yield now, RequestSent(event.request)

    def on_done(self, request: SimRequest, now: float) -> Iterator[Scheduled]:
        result = request.to_result()
        self.results[request.index] = result
        if self.on_result is not None:
            self.on_result(result)
        self.num_in_flight -= 1
        if self.waiting:
            self.num_in_flight += 1
            yield now, RequestSent(self.waiting.popleft())


def simulate(config: ClusterConfig, samples: list[SampleRequest], load: LoadConfig,
             ignore_eos: bool, on_result: OnResult | None = None,
             stats: SimStats | None = None) -> RunOutcome:
    """Run `samples` under `load` on a simulated `config`; deterministic for a `load.seed`."""
    if not samples:
        raise ValueError("no samples to run")
    model = load_model(config.model)
    tokenizer = make_tokenizer(config.tokenizer_path, model.vocab_size, config.model)
    client = _Client(len(samples), load, on_result)
    cluster = SimCluster(config, tokenizer.vocab_size, tokenizer.eos_token_id, ignore_eos,
                         client.on_done)
    loop = EventLoop({**cluster.handlers(), RequestReleased: client.on_released})
    offsets_s = schedule_offsets_s(samples, load.request_rate, load.burstiness, load.seed,
                                   load.time_scale)
    for index, (sample, offset_s) in enumerate(zip(samples, offsets_s)):
        request = _make_request(config, tokenizer, index, sample, load.seed)
        loop.schedule(float(offset_s), RequestReleased(request))
    loop.run()
    if stats is not None:
        stats.num_events, stats.model_s = loop.num_events, loop.now
    results = tuple(r for r in client.results if r is not None)
    if len(results) != len(samples):
        raise RuntimeError(f"{len(samples) - len(results)} requests never finished")
    duration_s = max(r.started_at_s + r.latency_s for r in results)
    return RunOutcome(results, max(duration_s, 1e-9), load)


def _make_request(config: ClusterConfig, tokenizer, index: int, sample: SampleRequest,
                  seed: int) -> SimRequest:
    prompt = sample.prompt
    token_ids = list(prompt) if isinstance(prompt, tuple) else tokenizer.encode(prompt)
    keys: tuple[bytes, ...] = ()
    if config.cache.enabled:
        # The live scheduler's namespace for a request without x-supernode-namespace.
        keys = tuple(block_keys(token_ids, config.cache.block_size, f"{config.model_name}/"))
    return SimRequest(index, f"sim-{index}", sample, token_ids, keys, seed=seed * 1_000_003 + index)
