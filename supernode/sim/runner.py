"""One benchmark point in virtual time: loadgen's samples and arrivals in, loadgen's outcome out.

Arrivals follow loadgen exactly (the same offsets for the same seed; a request waits for a
`max_concurrency` slot as the client would). Everything is in model seconds: the schedule's
offsets are model seconds, as they are for `supernode bench`, and results are reported in model
seconds, as `supernode bench --speedup S` reports them against `supernode up --speedup S`. The
config's `speedup` therefore changes nothing here. Warm-up requests are not simulated. With
`model_load.source` other than 'skip' the instances load their model first, as live ones do
(requests meanwhile get 503).

Memory stays flat however long the run: samples are streamed (one is made when it is released),
each request lives only while in flight, and what the report needs is reduced as requests end
(`RunAccumulator`: a few numbers per request; inter-token gaps as (gap, count) per decode step).
With `detailed`, every request's result (its chunk times included) is kept as well.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

from loadgen.accumulate import RunAccumulator
from loadgen.arrivals import arrival_offsets_s, schedule_offsets_s
from loadgen.config import LoadConfig, SloConfig, request_seed
from loadgen.runner import OnResult, RunOutcome
from loadgen.types import RequestResult, SampleRequest
from supernode.cache.hashing import block_keys
from supernode.config import ClusterConfig
from supernode.lifecycle.cache import cache_namespace
from supernode.lifecycle.decode import Step
from supernode.lifecycle.request import Request
from supernode.models import load_model
from supernode.sim.driver import Observer, RequestSent, SimCluster
from supernode.sim.kernel import EventLoop, Scheduled
from supernode.tokenizer import make_tokenizer


@dataclass(frozen=True, slots=True)
class RequestReleased:
    """The client's schedule reached a sample (it may still wait for a concurrency slot)."""

    request: Request


@dataclass
class SimStats:
    """How much work a run took: events handled and the model seconds simulated."""

    num_events: int = 0
    model_s: float = 0.0


class _Client(Observer):
    """The load generator's side: arrivals, concurrency slots, and the results."""

    def __init__(self, config: ClusterConfig, samples: Iterator[SampleRequest],
                 offsets_s, load: LoadConfig, slo: SloConfig, ignore_eos: bool,
                 on_result: OnResult | None, detailed: bool) -> None:
        self.config = config
        self.tokenizer = make_tokenizer(config.tokenizer_path, load_model(config.model).vocab_size,
                                        config.model)
        self.samples = samples
        self.offsets_s = offsets_s
        self.seed = load.seed
        self.max_concurrency = load.max_concurrency
        self.ignore_eos = ignore_eos
        self.on_result = on_result
        self.detailed = detailed
        self.acc = RunAccumulator(slo)
        self.results: dict[int, RequestResult] = {}
        self.samples_of: dict[str, tuple[int, int]] = {}  # request id -> (index, expected len)
        self.chunk_times: dict[str, list[float]] = {}
        self.num_released = 0
        self.num_in_flight = 0
        self.last_end_s = 0.0
        self.waiting: deque[Request] = deque()
        self.namespace = cache_namespace(config.model_name)

    # ---- arrivals
    def next_release(self) -> Scheduled | None:
        """The next sample's release event, or None when all are out."""
        sample = next(self.samples, None)
        if sample is None:
            return None
        index = self.num_released
        self.num_released += 1
        return float(self.offsets_s[index]), RequestReleased(self._request(index, sample))

    def on_released(self, now: float, event: RequestReleased) -> Iterator[Scheduled]:
        following = self.next_release()
        if following is not None:
            yield following
        if self.max_concurrency is not None and self.num_in_flight >= self.max_concurrency:
            self.waiting.append(event.request)
            return
        self.num_in_flight += 1
        event.request.arrived_at = now
        yield now, RequestSent(event.request)

    # ---- the observer
    def on_first_token(self, request: Request, now: float) -> None:
        self.acc.add_output_tokens(now, 1)
        if self.detailed:
            self.chunk_times[request.request_id] = [now]

    def on_step(self, step: Step, num_tokens: int) -> None:
        self.acc.add_output_tokens(step.done_at, num_tokens)
        if not self.detailed:
            self.acc.add_itls(step.timing.total_s, step.num_requests - len(step.joined))
            for _, first_gap_s in step.joined:
                self.acc.add_itls(first_gap_s, 1)

    def on_step_tokens(self, request: Request, num_tokens: int, now: float) -> None:
        self.chunk_times[request.request_id].append(now)

    def on_done(self, request: Request, now: float) -> Iterator[Scheduled]:
        index, expected = self.samples_of.pop(request.request_id)
        result = self._result(request, expected, now)
        self.acc.add(result, count_chunks=False)
        if self.detailed:
            for gap in result.itls_s:
                self.acc.add_itls(gap, 1)
            self.results[index] = result
        if self.on_result is not None:
            self.on_result(result)
        self.last_end_s = max(self.last_end_s, now)
        self.num_in_flight -= 1
        if self.waiting:
            self.num_in_flight += 1
            waiting = self.waiting.popleft()
            waiting.arrived_at = now
            yield now, RequestSent(waiting)

    # ---- helpers
    def _request(self, index: int, sample: SampleRequest) -> Request:
        prompt = sample.prompt
        # As the live /v1/completions counts it: a text prompt gets the model's BOS, ids are
        # taken as they are.
        token_ids = prompt if isinstance(prompt, tuple) else self.tokenizer.encode(
            prompt, add_special_tokens=True)
        cache = self.config.cache
        keys = tuple(block_keys(token_ids, cache.block_size, self.namespace)) if cache.enabled \
            else ()
        request_id = f"sim-{index}"
        self.samples_of[request_id] = (index, sample.expected_output_len)
        return Request(request_id, len(token_ids), sample.expected_output_len,
                       seed=request_seed(self.seed, index), arrived_at=0.0,
                       ignore_eos=self.ignore_eos, cache_namespace=self.namespace,
                       block_keys=keys)

    def _result(self, request: Request, expected: int, now: float) -> RequestResult:
        times = self.chunk_times.pop(request.request_id, None)
        first = request.first_token_at
        return RequestResult(
            success=not request.error and request.finish_reason is not None,
            prompt_len=request.num_prompt_tokens,
            expected_output_len=expected,
            output_tokens=request.num_output_tokens,
            ttft_s=None if first is None else first - request.arrived_at,
            latency_s=now - request.arrived_at,
            started_at_s=request.arrived_at,
            itls_s=tuple(b - a for a, b in pairwise(times)) if times else (),
            error=request.error,
            usage_reported=True,
            server_details=request.details(),
            cached_tokens=request.num_cached_tokens,
        )


def simulate(config: ClusterConfig, samples: Iterator[SampleRequest] | list[SampleRequest],
             num_samples: int, load: LoadConfig, ignore_eos: bool,
             on_result: OnResult | None = None, stats: SimStats | None = None,
             slo: SloConfig | None = None, detailed: bool = False,
             trace_offsets_s=None) -> RunOutcome:
    """Run `num_samples` samples under `load` on a simulated `config`; deterministic for a
    `load.seed`. `trace_offsets_s`: the samples' own send times (trace workloads)."""
    if num_samples < 1:
        raise ValueError("no samples to run")
    offsets = trace_offsets_s if trace_offsets_s is not None else arrival_offsets_s(
        num_samples, load.request_rate, load.burstiness, load.seed)
    client = _Client(config, iter(samples), offsets, load, slo or SloConfig(), ignore_eos,
                     on_result, detailed)
    cluster = SimCluster(config, client, detailed)
    loop = EventLoop({**cluster.handlers(), RequestReleased: client.on_released})
    for event in cluster.start():
        loop.schedule(*event)
    first = client.next_release()
    if first is not None:
        loop.schedule(*first)
    loop.run()
    if stats is not None:
        stats.num_events, stats.model_s = loop.num_events, loop.now
    if client.acc.num_requests != client.num_released:
        raise RuntimeError(f"{client.num_released - client.acc.num_requests} requests never "
                           f"finished")
    results = tuple(client.results[i] for i in sorted(client.results)) if detailed else None
    return RunOutcome(client.acc, max(client.last_end_s, 1e-9), load, results)


def simulate_samples(config: ClusterConfig, samples: list[SampleRequest], load: LoadConfig,
                     ignore_eos: bool, **kwargs) -> RunOutcome:
    """`simulate` over a list, with trace offsets when every sample carries one."""
    trace = samples and all(s.arrival_offset_s is not None for s in samples)
    offsets = schedule_offsets_s(samples, load.request_rate, load.burstiness, load.seed,
                                 load.time_scale) if trace else None
    return simulate(config, samples, len(samples), load, ignore_eos, trace_offsets_s=offsets,
                    **kwargs)


def simulate_point(config: ClusterConfig, samples, load: LoadConfig, ignore_eos: bool,
                   on_result: OnResult | None = None, stats: SimStats | None = None,
                   slo: SloConfig | None = None, detailed: bool = False) -> RunOutcome:
    """One point of `supernode sim` from loadgen's `PointSamples`: streamed, or listed for a
    trace workload (its samples carry their own send times)."""
    kwargs = {"on_result": on_result, "stats": stats, "slo": slo, "detailed": detailed}
    if getattr(samples.workload, "is_trace", False):
        return simulate_samples(config, samples.build(), load, ignore_eos, **kwargs)
    return simulate(config, samples.stream(), samples.num_prompts, load, ignore_eos, **kwargs)
