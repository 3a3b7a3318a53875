"""Small factories for simulator tests."""

from __future__ import annotations

from collections.abc import Iterator

from loadgen.config import LoadConfig
from loadgen.runner import RunOutcome
from loadgen.workloads import RandomWorkload
from supernode.config import ClusterConfig, load_config
from supernode.deployment import ServedModel
from supernode.lifecycle.models import SwitchDone
from supernode.lifecycle.request import Request
from supernode.sim.driver import Observer, RequestSent, SimCluster
from supernode.sim.kernel import EventLoop, Scheduled
from supernode.sim.runner import simulate_samples


def run_sim(num_prompts: int = 20, rate: float = 2.0, input_len: int = 1024,
            output_len: int = 32, seed: int = 0, range_ratio: float = 0.0,
            **overrides: object) -> RunOutcome:
    """Simulate a random workload on the default deployment with dotted config overrides,
    keeping every request's result."""
    config = load_config(None, overrides)
    samples = RandomWorkload(input_len, output_len, range_ratio, 0).build(num_prompts, seed)
    return simulate_samples(config, samples, LoadConfig(request_rate=rate, seed=seed),
                            ignore_eos=True, detailed=True)


class Recorder(Observer):
    """Records what a simulation tells the client: finished requests, loads and switches."""

    def __init__(self) -> None:
        self.done: dict[str, Request] = {}
        self.loads: list[tuple[str, str, str, float, float]] = []
        self.switches: list[tuple[SwitchDone, str]] = []

    def on_first_token(self, request: Request, now: float) -> None:
        return None

    def on_step(self, step, num_tokens: int) -> None:
        return None

    def on_done(self, request: Request, now: float) -> Iterator[Scheduled]:
        self.done[request.request_id] = request
        return iter(())

    def on_model_loaded(self, worker_id: str, model: ServedModel, source: str,
                        started_at: float, now: float) -> None:
        self.loads.append((worker_id, model.name, source, started_at, now))

    def on_switch_done(self, done: SwitchDone, source: str) -> None:
        self.switches.append((done, source))


def run_requests(config: ClusterConfig, requests: list[Request]) -> Recorder:
    """Simulate `config` with `requests` sent at their `arrived_at`, from the run's start."""
    recorder = Recorder()
    cluster = SimCluster(config, recorder)
    loop = EventLoop(cluster.handlers())
    for event in cluster.start():
        loop.schedule(*event)
    for request in requests:
        loop.schedule(request.arrived_at, RequestSent(request))
    loop.run()
    return recorder
