"""What a frozen cache tier costs each request, with and without prefill's circuit breaker.

    .venv/bin/python bench/frozen_cache.py                       # EMS frozen, both settings
    .venv/bin/python bench/frozen_cache.py --freeze redis --num-requests 40

For each setting it starts its own cluster (`services.launcher.Cluster`, default deployment;
`--freeze redis` backs EMS with its own redis-server on a free port), sends `--num-requests`
sequential completions with distinct 1,024-token prompts while the cache tier runs (healthy),
then freezes the EMS process (or redis-server) with SIGSTOP and sends the same number again,
then SIGCONTs it. Reported per setting and phase: wall TTFT p50 and p90 (client-observed,
first byte of a non-streaming completion with max_tokens 1, so TTFT = e2e), and for the frozen
phase how many requests waited for the lookup timeout (TTFT above `cache.lookup_timeout_s`).
Settings: `breaker` (defaults: opens after 3 failures) and `no-breaker` (a failure threshold of
10^9, which never opens: every request pays the lookup timeout, as before the breaker).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.launcher import Cluster, free_port
from supernode.config import load_config

SETTINGS = {"breaker": {}, "no-breaker": {"cache.breaker_failure_threshold": 10**9}}
PROMPT_LEN = 1024


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed")
    port = free_port("127.0.0.1")
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(workdir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url).ping()
            return process, url
        except (redis.RedisError, OSError):  # not up yet
            time.sleep(0.1)
    process.kill()
    raise SystemExit("redis-server did not start")


def ttfts(endpoint: str, first_token: int, count: int) -> list[float]:
    out = []
    with httpx.Client(timeout=60) as client:
        for i in range(count):
            started = time.monotonic()
            r = client.post(f"{endpoint}/v1/completions", json={
                "model": "deepseek-r1", "prompt": [first_token + i] * PROMPT_LEN,
                "max_tokens": 1})
            r.raise_for_status()
            out.append(time.monotonic() - started)
    return out


def run_setting(name: str, freeze: str, num_requests: int) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix=f"frozen-{name}-"))
    overrides: dict[str, object] = {"ports.http": free_port("127.0.0.1"), **SETTINGS[name]}
    redis_process = None
    if freeze == "redis":
        redis_process, url = start_redis(workdir)
        overrides.update({"cache.backend": "redis", "cache.redis_url": url})
    config = load_config(None, overrides)
    cluster = Cluster(config, workdir, "WARNING")
    cluster.start()
    victim = redis_process or next(c for c in cluster.children if c.name == "ems").process
    try:
        cluster.wait_ready(120)
        healthy = ttfts(cluster.endpoint, 1000, num_requests)
        victim.send_signal(signal.SIGSTOP)
        try:
            frozen = ttfts(cluster.endpoint, 5000, num_requests)
        finally:
            victim.send_signal(signal.SIGCONT)
    finally:
        cluster.stop()
        if redis_process is not None:
            redis_process.kill()
            redis_process.wait()
    timeout_s = config.cache.lookup_timeout_s
    return {"setting": name, "healthy": healthy, "frozen": frozen,
            "paid_timeout": sum(t > timeout_s for t in frozen), "timeout_s": timeout_s}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--freeze", choices=("ems", "redis"), default="ems")
    parser.add_argument("--num-requests", type=int, default=30)
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = parser.parse_args()
    print(f"frozen: {args.freeze}; {args.num_requests} sequential requests per phase, "
          f"{PROMPT_LEN}-token prompts, max_tokens 1")
    print(f"{'setting':<12} {'healthy p50':>12} {'frozen p50':>11} {'frozen p90':>11} "
          f"{'paid timeout':>13}")
    for name in args.settings:
        r = run_setting(name, args.freeze, args.num_requests)
        print(f"{name:<12} {1e3 * statistics.median(r['healthy']):>10.0f}ms "
              f"{1e3 * statistics.median(r['frozen']):>9.0f}ms "
              f"{1e3 * percentile(r['frozen'], 90):>9.0f}ms "
              f"{r['paid_timeout']:>6} of {len(r['frozen'])}", flush=True)


if __name__ == "__main__":
    main()
