"""The prefix-reuse experiment: TTFT and prefill throughput vs prefix reuse rate, per setting.

    .venv/bin/python bench/cache_reuse.py            # all settings, ~2-3 minutes
    .venv/bin/python bench/cache_reuse.py --settings p2p-ub-memory kv-affinity --num-requests 16

For each setting it starts its own cluster (`services.launcher.Cluster`: 2 prefill x 16 NPUs,
1 decode instance; the Redis settings get their own redis-server on a free port, stopped by
PID), then for each reuse rate r it sends a shared-prefix workload: prompts of PROMPT_LEN
tokens, the first r * PROMPT_LEN shared by one of NUM_PREFIXES groups, the rest unique. Each
group is sent once first (warm-up, not measured), then `--num-requests` prompts cycling over the
groups go out with `--concurrency` in flight. Each rate uses its own namespace, so rates do not
share blocks. Reported per (setting, rate), all from the cluster's modelled figures:

- mean TTFT: the responses' `supernode.modelled_ttft_s` (queue + cache fetch + compute + KV
  handoff, model seconds);
- prefill tokens/s per NPU: prompt tokens over the prefill instances' modelled busy time
  (compute batches plus cache-fetch link time, counted as occupying the instance), per NPU;
- cached share: cached_tokens over prompt tokens;
- model TTFT: what the hardware model gives one lone request at this rate (fetch on the
  setting's link + `prefill_time` with the cached prefix + RDMA handoff), the floor the mean
  TTFT sits above by queueing and batching.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.launcher import Cluster, free_port
from supernode.config import ClusterConfig, load_config
from supernode.deployment import instance_deployment
from supernode.hardware import LOCAL_DRAM_LINK
from supernode.perf import PrefillBatch, prefill_time, transfer_time
from supernode.policy.kv_affinity import uses_local_cache

PROMPT_LEN = 5120
"""40 blocks of 128: 12.5%, 50% and 90% prefixes are whole blocks (5, 20, 36)."""
NUM_PREFIXES = 4
RATES = (0.0, 0.125, 0.5, 0.9)
MAX_TOKENS = 2
SETTINGS: dict[str, dict[str, object]] = {
    "p2p-ub-memory": {"routing_policy": "p2p"},
    "p2p-vpc-memory": {"routing_policy": "p2p", "cache.plane": "vpc"},
    "p2p-ub-redis": {"routing_policy": "p2p", "cache.backend": "redis"},
    "p2p-vpc-redis": {"routing_policy": "p2p", "cache.backend": "redis", "cache.plane": "vpc"},
    "kv-affinity": {"routing_policy": "kv-affinity"},
}


@dataclass(frozen=True)
class Row:
    setting: str
    rate: float
    mean_ttft_s: float
    tokens_per_s_per_npu: float
    cached_share: float
    model_ttft_s: float


def tokens(seed: str, n: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(1000, 100_000) for _ in range(n)]


def prompt(rate: float, group: int, i: int) -> list[int]:
    n_prefix = round(rate * PROMPT_LEN)
    return tokens(f"prefix-{rate}-{group}", n_prefix) + tokens(f"s-{rate}-{i}", PROMPT_LEN - n_prefix)


async def send(http: httpx.AsyncClient, namespace: str, body: list[int]) -> dict:
    r = await http.post("/v1/completions", headers={"x-supernode-namespace": namespace}, json={
        "model": "deepseek-r1", "prompt": body, "max_tokens": MAX_TOKENS, "ignore_eos": True})
    r.raise_for_status()
    return r.json()


async def prefill_totals(http: httpx.AsyncClient) -> tuple[float, float]:
    """(prompt tokens, busy NPU-seconds) summed over the prefill workers."""
    num_tokens = npu_s = 0.0
    for target in (await http.get("/sd/targets")).json():
        if target["labels"]["role"] != "prefill":
            continue
        text = (await http.get(f"http://{target['targets'][0]}/metrics")).text
        busy = _sum(text, "supernode_busy_seconds_total") + _sum(
            text, "supernode_link_busy_seconds_total", plane="ems_|local_")
        num_tokens += _sum(text, "vllm:prompt_tokens_total")
        npu_s += busy * NUM_NPUS_PER_PREFILL
    return num_tokens, npu_s


def _sum(text: str, name: str, plane: str = "") -> float:
    label = rf'[^}}]*plane="(?:{plane})' if plane else ""
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}{{{label}[^}}]*}} (\S+)$",
                                            text, re.MULTILINE))


async def run_rate(http: httpx.AsyncClient, setting: str, config: ClusterConfig, rate: float,
                   num_requests: int, concurrency: int) -> Row:
    namespace = f"{setting}-{rate}"
    for g in range(NUM_PREFIXES):
        await send(http, namespace, prompt(rate, g, -1 - g))
    await asyncio.sleep(0.3)  # let the warm-up stores land
    tokens_0, npu_s_0 = await prefill_totals(http)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(num_requests):
        queue.put_nowait(i)
    replies: list[dict] = []

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            replies.append(await send(http, namespace, prompt(rate, i % NUM_PREFIXES, i)))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    tokens_1, npu_s_1 = await prefill_totals(http)
    num_prompt = sum(r["usage"]["prompt_tokens"] for r in replies)
    num_cached = sum(r["usage"]["prompt_tokens_details"]["cached_tokens"] for r in replies)
    ttfts = [r["supernode"]["modelled_ttft_s"] for r in replies]
    return Row(setting, rate, sum(ttfts) / len(ttfts),
               (tokens_1 - tokens_0) / max(1e-12, npu_s_1 - npu_s_0), num_cached / num_prompt,
               model_ttft_s(config, rate))


def model_ttft_s(config: ClusterConfig, rate: float) -> float:
    """The hardware model's TTFT of one lone request whose whole-block prefix is cached."""
    d = instance_deployment(config, "prefill")
    kv_bytes = d.model.kv_bytes_per_token(d.kv_dtype)
    block = config.cache.block_size
    num_cached = min(round(rate * PROMPT_LEN) // block, (PROMPT_LEN - 1) // block) * block
    link = (LOCAL_DRAM_LINK if uses_local_cache(config.routing_policy)
            else d.hardware.link(f"ems_{config.cache.plane}"))
    fetch = transfer_time(num_cached * kv_bytes, link).total_s if num_cached else 0.0
    compute = prefill_time(PrefillBatch((PROMPT_LEN,), (num_cached,)), d).total_s
    return fetch + compute + transfer_time(PROMPT_LEN * kv_bytes, d.hardware.link("rdma")).total_s


class Redis:
    """A throwaway redis-server on a free port, stopped by its PID."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=5)


NUM_NPUS_PER_PREFILL = load_config(None, {}).prefill.num_devices


def run_setting(name: str, args: argparse.Namespace, workdir: Path,
                redis: Redis | None) -> list[Row]:
    overrides = {"ports.http": free_port("127.0.0.1"), "num_prefill": 2, **SETTINGS[name]}
    if overrides.get("cache.backend") == "redis":
        assert redis is not None
        overrides["cache.redis_url"] = redis.url
    log_dir = workdir / name
    log_dir.mkdir()
    config = load_config(None, overrides)
    cluster = Cluster(config, log_dir, "WARNING")
    cluster.start()
    try:
        cluster.wait_ready(60.0)

        async def all_rates() -> list[Row]:
            async with httpx.AsyncClient(base_url=cluster.endpoint, timeout=120) as http:
                return [await run_rate(http, name, config, rate, args.num_requests,
                                       args.concurrency) for rate in args.rates]

        return asyncio.run(all_rates())
    finally:
        cluster.stop()


def table(rows: list[Row]) -> str:
    lines = [("| setting | reuse | mean TTFT (ms) | model TTFT (ms) | prefill tok/s per NPU "
              "| cached share |"), "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.setting} | {r.rate:.1%} | {r.mean_ttft_s * 1e3:.1f} | "
                     f"{r.model_ttft_s * 1e3:.1f} | "
                     f"{r.tokens_per_s_per_npu:,.0f} | {r.cached_share:.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--rates", nargs="+", type=float, default=list(RATES))
    p.add_argument("--num-requests", type=int, default=24, help="measured requests per rate")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="cache-reuse-"))
    needs_redis = any(SETTINGS[s].get("cache.backend") == "redis" for s in args.settings)
    redis = Redis(workdir) if needs_redis else None
    rows: list[Row] = []
    try:
        for name in args.settings:
            started = time.monotonic()
            rows += run_setting(name, args, workdir, redis)
            print(f"{name}: {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    finally:
        if redis is not None:
            redis.stop()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
