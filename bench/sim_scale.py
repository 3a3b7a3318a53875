"""How fast and how big `supernode sim` is at paper scale.

Runs the paper's deployment (deploy/configs/cloudmatrix-paper.yaml) on the random workload of
issue 12 (2,048-token prompts, 512 output tokens, ignore_eos, Poisson at 200 req/s) for each
request count, each in a fresh child process so its peak RSS is its own, and prints requests
per wall-second, simulated (model) seconds per wall-second and peak RSS.

    .venv/bin/python bench/sim_scale.py [--counts 10000,100000,1000000] [--json-out F]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "configs" / "cloudmatrix-paper.yaml"

CHILD = """
import json, resource, sys, time
from loadgen.config import LoadConfig
from loadgen.workloads import RandomWorkload
from supernode.config import load_config
from supernode.sim.runner import SimStats, simulate
n, rate, config_path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
config = load_config(config_path)
workload = RandomWorkload(input_len=2048, output_len=512)
stats = SimStats()
started = time.perf_counter()
outcome = simulate(config, workload.iter_samples(n, 0), n, LoadConfig(request_rate=rate),
                   ignore_eos=True, stats=stats)
wall_s = time.perf_counter() - started
cpu = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"num_requests": n, "completed": outcome.acc.num_completed,
                  "wall_s": wall_s, "cpu_s": cpu.ru_utime + cpu.ru_stime, "model_s": stats.model_s, "num_events": stats.num_events,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def run_one(num_requests: int, rate: float) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(num_requests), str(rate),
                           str(CONFIG)], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"simulation of {num_requests} requests failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="10000,100000,1000000",
                        help="request counts, comma-separated")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per model second")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()
    rows = []
    print(f"{'requests':>10} {'wall s':>8} {'CPU s':>7} {'req/wall-s':>11} "
          f"{'model s/wall-s':>15} {'events':>10} {'peak RSS':>9}")
    for n in (int(c) for c in args.counts.split(",")):
        row = run_one(n, args.rate)
        rows.append(row)
        print(f"{n:>10,} {row['wall_s']:>8.1f} {row['cpu_s']:>7.1f} {n / row['wall_s']:>11,.0f} "
              f"{row['model_s'] / row['wall_s']:>15.1f} {row['num_events']:>10,} "
              f"{row['peak_rss_bytes'] / 2**20:>7,.0f} MB", flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"),
                                                   "load_average": _load(), "runs": rows},
                                                  indent=2))
    return 0


def _load() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
