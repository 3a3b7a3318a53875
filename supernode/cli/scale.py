"""`supernode scale ROLE=N ...`: resize the prefill or decode pool of a running `supernode up`.

It calls the control API of the `up` serving `--url` (supernode/cli/control.py), which starts
new instances (they register, and pay their modelled model load when loads are modelled) or
stops surplus ones newest first (each drains before it exits). Unless `--no-wait`, it then
waits until the scheduler's /health shows each pool at its new size (loading workers count)
and the stopped instances are gone, and exits 1 if that takes longer than `--timeout`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import httpx

from supernode.cli.control import MAX_INSTANCES, POOLS, ControlClient, ControlError


def pool_size(text: str) -> tuple[str, int]:
    """argparse type for ROLE=N."""
    pool, sep, count = text.partition("=")
    if not sep or pool not in POOLS:
        raise argparse.ArgumentTypeError(f"expected prefill=N or decode=N, got {text!r}")
    try:
        n = int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: N must be a whole number") from None
    if not 1 <= n <= MAX_INSTANCES:
        raise argparse.ArgumentTypeError(f"{text}: N must be in 1..{MAX_INSTANCES}")
    return pool, n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="supernode scale", description=__doc__.split("\n")[0])
    p.add_argument("sizes", nargs="+", type=pool_size, metavar="ROLE=N",
                   help="prefill=N and/or decode=N")
    p.add_argument("--url", default=os.environ.get("SUPERNODE_URL", "http://127.0.0.1:8000"),
                   help="the endpoint of the `supernode up` to scale (default $SUPERNODE_URL "
                        "or http://127.0.0.1:8000)")
    p.add_argument("--admin-key", default=os.environ.get("SUPERNODE_ADMIN_KEY"),
                   help="send the admin key instead of the state file's token "
                        "(default $SUPERNODE_ADMIN_KEY)")
    p.add_argument("--no-wait", action="store_true", help="return once the change is made")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for the pools to settle (default 120)")
    return p


def settled(url: str, client: ControlClient, want: dict[str, int], stopping: set[str]
            ) -> dict[str, tuple[int, int]] | None:
    """{pool: (registered, loading)} once every pool in `want` has that many registered and
    none of `stopping` is left, else None."""
    names = {i["name"] for i in client.instances()["instances"]}
    if names & stopping:
        return None
    try:
        health = httpx.get(f"{url.rstrip('/')}/health", timeout=5.0).json()
    except (httpx.HTTPError, ValueError):
        return None
    seen = {pool: (health["workers"].get(pool, 0) + health["loading"].get(pool, 0),
                   health["loading"].get(pool, 0)) for pool in want}
    return seen if all(seen[p][0] == n for p, n in want.items()) else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    want = dict(args.sizes)
    try:
        client, _ = ControlClient.for_endpoint(args.url, args.admin_key)
        stopping: set[str] = set()
        for pool, n in want.items():
            result = client.scale(pool, n)
            stopping |= set(result["stopping"])
            change = "".join(f"; {what} {', '.join(result[key])}" for key, what in
                             (("started", "starting"), ("stopping", "draining")) if result[key])
            print(f"{pool}: {result['previous']} -> {n}{change}", flush=True)
        if args.no_wait:
            return 0
        deadline = time.monotonic() + args.timeout
        while (seen := settled(args.url, client, want, stopping)) is None:
            if time.monotonic() > deadline:
                print(f"supernode scale: the pools did not settle within {args.timeout:.0f}s "
                      f"(see {args.url}/health and the up's logs)", file=sys.stderr)
                return 1
            time.sleep(0.5)
    except ControlError as e:
        print(f"supernode scale: {e}", file=sys.stderr)
        return 1
    for pool, (registered, loading) in seen.items():
        print(f"{pool}: {registered} registered" + (f" ({loading} loading)" if loading else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
