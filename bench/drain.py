"""What SIGTERM on a decode instance under streaming load costs its requests.

    .venv/bin/python bench/drain.py [--streams 16] [--max-tokens 200]

Starts the default deployment with two decode instances (`services.launcher.Cluster`), opens
`--streams` concurrent streaming completions (`max_tokens` each, `ignore_eos`), SIGTERMs
decode-0 once every stream is decoding, then opens `--late` new streams 0.2 s later and
`--late` more right after decode-0 has exited. Reports how many streams failed over
(re-prefilled elsewhere), how many completed in full, each late wave's wall TTFT, and how long
decode-0 took to exit. Works on any revision that has
`services.launcher.Cluster` (to compare with an older one, run this file from its checkout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.launcher import Cluster, free_port
from supernode.config import load_config


async def stream(client: httpx.AsyncClient, base: str, prompt: list[int], max_tokens: int
                 ) -> dict[str, object]:
    started, ttft, tokens, ext = time.monotonic(), None, 0, {}
    async with client.stream("POST", f"{base}/v1/completions", json={
            "model": "deepseek-r1", "prompt": prompt, "max_tokens": max_tokens,
            "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices"):
                ttft = ttft if ttft is not None else time.monotonic() - started
            elif "usage" in chunk:
                tokens, ext = chunk["usage"]["completion_tokens"], chunk.get("supernode", {})
    return {"ttft_s": ttft, "tokens": tokens, "failovers": ext.get("num_failovers", 0)}


async def decoding(client: httpx.AsyncClient, endpoint: str) -> float:
    text = (await client.get(f"{endpoint}/metrics")).text
    m = re.search(r'supernode_requests\{model_name="deepseek-r1",state="decoding"\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


async def scenario(cluster: Cluster, num_streams: int, num_late: int, max_tokens: int) -> None:
    victim = next(c for c in cluster.children if c.name == "decode-0").process
    async with httpx.AsyncClient(timeout=300) as client:
        streams = [asyncio.create_task(stream(client, cluster.endpoint, [9000 + i] * 200,
                                              max_tokens)) for i in range(num_streams)]
        while await decoding(client, cluster.endpoint) < num_streams:
            await asyncio.sleep(0.05)
        victim.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.sleep(0.2)
        during = await asyncio.gather(*late_wave(client, cluster, num_late, 9500))
        exit_s = await asyncio.to_thread(victim.wait)
        exited_after = time.monotonic() - signalled
        after = await asyncio.gather(*late_wave(client, cluster, num_late, 9700))
        results = await asyncio.gather(*streams)
    print(f"streams: {num_streams} x {max_tokens} tokens; decode-0 exited {exit_s} "
          f"{exited_after:.1f}s after SIGTERM")
    print(f"  completed in full: {sum(r['tokens'] == max_tokens for r in results)}, "
          f"failed over: {sum(r['failovers'] >= 1 for r in results)}")
    for label, wave in (("0.2 s after SIGTERM", during), ("after decode-0 exited", after)):
        ttfts = [r["ttft_s"] for r in wave]
        print(f"  late streams {label}: {len(wave)}, completed "
              f"{sum(r['tokens'] == 20 for r in wave)}, failed over "
              f"{sum(r['failovers'] >= 1 for r in wave)}, TTFT median "
              f"{1e3 * statistics.median(ttfts):.0f} ms, max {1e3 * max(ttfts):.0f} ms")


def late_wave(client: httpx.AsyncClient, cluster: Cluster, count: int, first: int) -> list:
    return [asyncio.create_task(stream(client, cluster.endpoint, [first + i] * 50, 20))
            for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--late", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=200)
    args = parser.parse_args()
    config = load_config(None, {"ports.http": free_port("127.0.0.1"), "num_decode": 2})
    cluster = Cluster(config, Path(tempfile.mkdtemp(prefix="drain-")), "WARNING")
    cluster.start()
    try:
        cluster.wait_ready(120)
        asyncio.run(scenario(cluster, args.streams, args.late, args.max_tokens))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
