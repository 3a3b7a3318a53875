"""Cost of one uncached `decode_step_time` call (the simulator and live decode workers call it
once per step), for a few deployments; optionally side by side with another checkout.

    python bench/decode_step_cost.py
    python bench/decode_step_cost.py --baseline /path/to/other/checkout

CPU time of this process (``time.process_time``), best of several rounds, so other load on a
shared machine disturbs it less than wall time would.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

CASES = (
    ("ascend-910c 160 NPUs DP320/EP320, MTP 1", dict(hardware="ascend-910c", num_devices=160,
                                                     dp=320, ep=320, mtp_tokens=1)),
    ("ascend-910c 4 NPUs EP8, MTP 1", dict(hardware="ascend-910c", num_devices=4, ep=8,
                                           mtp_tokens=1)),
    ("h800 128 GPUs EP128, no MTP", dict(hardware="h800", num_devices=128, dp=128, ep=128,
                                         quant="fp8")),
)


def measure(rounds: int = 7, calls: int = 300) -> list[tuple[str, float]]:
    """(case, microseconds per uncached call) for every case."""
    from supernode import perf
    from supernode.perf import decode

    uncached = decode._decode_step_time.__wrapped__
    results = []
    for name, fields in CASES:
        d = perf.Deployment.build(model="deepseek-r1", **fields)
        uncached(perf.DecodeBatch(1, 10.0), d)
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            for i in range(calls):
                uncached(perf.DecodeBatch(1 + (i * 37) % 15000, 1000.5 + i), d)
            best = min(best, (time.process_time() - start) / calls)
        results.append((name, best * 1e6))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to time side by side")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import supernode

        print(f"tree\t{Path(supernode.__file__).parent.parent}")
        for name, us in measure():
            print(f"{name}\t{us:.1f}")
        return 0
    trees = {"this tree": Path(__file__).resolve().parent.parent}
    if args.baseline:
        trees = {"baseline": args.baseline.resolve(), **trees}
    columns = {}
    for label, root in trees.items():
        env = dict(os.environ, PYTHONPATH=str(root))
        out = subprocess.run([sys.executable, __file__, "--worker"], capture_output=True,
                             text=True, env=env, check=True, cwd=root)
        columns[label] = dict(line.split("\t") for line in out.stdout.splitlines())
        if Path(columns[label]["tree"]) != root:
            raise SystemExit(f"{label}: imported supernode from {columns[label]['tree']}")
    print("case | " + " | ".join(f"{label} (us/call)" for label in columns))
    for name, _ in CASES:
        print(name + " | " + " | ".join(col.get(name, "n/a") for col in columns.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
