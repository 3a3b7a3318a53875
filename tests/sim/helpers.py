"""Small factories for simulator tests."""

from __future__ import annotations

from loadgen.config import LoadConfig
from loadgen.runner import RunOutcome
from loadgen.workloads import RandomWorkload
from supernode.config import load_config
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
