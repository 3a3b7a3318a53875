"""Streaming ceiling of the full stack vs a bare FastAPI/uvicorn SSE server (issue 5, item 7).

For each target, concurrency levels are run in increasing order (`stream_driver.run_level`)
until one fails; a level passes when no stream failed, all streams ran at once, the mean
client-observed TPOT is within `--tolerance` (5%, either side) of the target TPOT, and the
sustained chunk rate is within the tolerance of the rate the streams offer. A target's ceiling
is its highest passing level, with the sustained SSE chunks/s and output tokens/s measured there.

- full stack: `supernode up`'s processes (scheduler, EMS, prefill, decode), started here through
  `services.launcher.Cluster` from `--config`/`--set` with `--speedup` and stopped at the end;
  or an already running one at `--base-url`. Each stream's target TPOT is its own modelled TPOT
  from its final usage chunk (`supernode.modelled_tpot_s`, model seconds) / `--speedup`.
- bare: `bench/sse_server.py` in its own process, one token per chunk at the full stack's
  measured chunk interval (modelled TPOT x tokens per chunk), so both serve the same chunks/s
  per stream; `--interval-ms` sets it when the full stack is skipped.
The ratio printed is full-stack ceiling chunks/s / bare ceiling chunks/s.

Usage: .venv/bin/python bench/stream_ceiling.py [--speedup 0.4] [--base-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_driver import LevelMeasurement, LevelSpec, run_level

from loadgen.config import EndpointConfig
from services.common.worker_main import parse_overrides
from services.launcher import Cluster, free_port
from supernode.config import load_config

SERVER_SCRIPT = Path(__file__).with_name("sse_server.py")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stream_ceiling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--levels",
        default="100,300,500,600,700,800,1000,1500,2000",
        help="concurrent streams per level",
    )
    p.add_argument("--chunks-per-stream", type=int, default=200, help="output tokens per stream")
    p.add_argument(
        "--interval-ms",
        type=float,
        default=None,
        help="bare server chunk interval (default: the full stack's, else 50)",
    )
    p.add_argument(
        "--client-procs", type=int, default=1, help="client processes sharing the streams"
    )
    p.add_argument(
        "--stagger-ms",
        type=float,
        default=1000.0,
        help="spread of stream starts, so the start is a ramp, not a connection storm",
    )
    p.add_argument("--tolerance", type=float, default=0.05, help="allowed TPOT excess over target")
    p.add_argument("--keep-going", action="store_true", help="run every level even after one fails")
    p.add_argument(
        "--base-url", default=None, help="a running full stack (default: start one here)"
    )
    p.add_argument("--config", default=None, help="cluster YAML for the started full stack")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="cluster config override"
    )
    p.add_argument(
        "--speedup",
        type=float,
        default=0.4,
        help="model seconds per wall second of the full stack (0.4: a 20.8 ms decode step "
        "streams a chunk every 52 ms, near the 50 ms of the bare-server baseline)",
    )
    p.add_argument("--skip-full-stack", action="store_true", help="measure the bare server only")
    p.add_argument("--endpoint", default="/v1/completions")
    p.add_argument("--model", default="deepseek-r1")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--json-out", default=None, help="write every measurement here")
    return p


def sweep_levels(
    console: Console,
    title: str,
    endpoint: EndpointConfig,
    levels: list[int],
    make_spec,
    tolerance: float,
    keep_going: bool,
) -> list[LevelMeasurement]:
    measured = []
    for concurrency in levels:
        m = run_level(endpoint, make_spec(concurrency))
        measured.append(m)
        console.print(
            f"{title}: {concurrency} streams -> {m.chunks_per_s:,.0f} chunks/s, "
            f"TPOT {m.mean_tpot_ms:.2f} ms vs {m.target_tpot_ms:.2f} ms target "
            f"({'pass' if m.passes(tolerance) else 'FAIL'})"
        )
        if not m.passes(tolerance) and not keep_going:
            break
    console.print(_table(title, measured, tolerance))
    return measured


def _table(title: str, measured: list[LevelMeasurement], tolerance: float) -> Table:
    t = Table(title=title)
    for col in (
        "streams",
        "offered/s",
        "chunks/s",
        "tokens/s",
        "TPOT ms",
        "target ms",
        "ratio",
        "mean ITL ms",
        "p99 ITL ms",
        "p99 TTFT ms",
        "failed",
        "client CPU",
        "pass",
    ):
        t.add_column(col, justify="right")
    for m in measured:
        t.add_row(
            str(m.concurrency),
            f"{m.offered_chunks_per_s:,.0f}",
            f"{m.chunks_per_s:,.0f}",
            f"{m.tokens_per_s:,.0f}",
            f"{m.mean_tpot_ms:.2f}",
            f"{m.target_tpot_ms:.2f}",
            f"{m.tpot_ratio:.3f}",
            f"{m.mean_itl_ms:.2f}",
            f"{m.p99_itl_ms:.2f}",
            f"{m.p99_ttft_ms:.1f}",
            str(m.num_failed),
            f"{m.client_cpu:.2f}",
            "yes" if m.passes(tolerance) else "no",
        )
    return t


def ceiling(measured: list[LevelMeasurement], tolerance: float) -> LevelMeasurement | None:
    passing = [m for m in measured if m.passes(tolerance)]
    return max(passing, key=lambda m: m.concurrency) if passing else None


def start_bare_server(interval_ms: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--interval-ms", str(interval_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"bare server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def _describe(name: str, c: LevelMeasurement | None, levels: list[int]) -> str:
    if c is None:
        return f"{name}: no level passed"
    capped = (
        " (highest level tried; the real ceiling may be higher)"
        if c.concurrency == max(levels)
        else ""
    )
    return (
        f"{name}: {c.concurrency} streams, {c.chunks_per_s:,.0f} chunks/s, "
        f"{c.tokens_per_s:,.0f} output tokens/s{capped}"
    )


@contextlib.contextmanager
def full_stack(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Iterator[str]:
    """The full stack's base URL: `--base-url`, or a cluster started here and stopped after."""
    if args.base_url:
        yield args.base_url
        return
    overrides = parse_overrides(args.set, parser)
    overrides.setdefault("ports.http", free_port("127.0.0.1"))
    config = load_config(args.config, {**overrides, "speedup": args.speedup})
    cluster = Cluster(config, Path(tempfile.mkdtemp(prefix="stream-ceiling-")), "WARNING")
    cluster.start()
    try:
        cluster.wait_ready(60.0)
        print(
            f"full stack up at {cluster.endpoint} (speedup {config.speedup:g}, "
            f"logs {cluster.log_dir})",
            flush=True,
        )
        yield cluster.endpoint
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    levels = sorted(int(x) for x in args.levels.split(","))
    console = Console(width=150)
    report: dict = {
        "levels": levels,
        "chunks_per_stream": args.chunks_per_stream,
        "client_procs": args.client_procs,
        "tolerance": args.tolerance,
        "speedup": args.speedup,
    }

    def spec_maker(target_ms: float | None, num_tokens: int):
        return lambda c: LevelSpec(
            c,
            num_tokens,
            args.client_procs,
            args.stagger_ms / 1e3,
            args.prompt_len,
            target_ms,
            args.speedup,
        )

    full = None
    interval_ms, bare_tokens = args.interval_ms or 50.0, args.chunks_per_stream
    if not args.skip_full_stack:
        with full_stack(args, parser) as base_url:
            endpoint = EndpointConfig(
                base_url, args.endpoint, args.model, ignore_eos=True, request_timeout_s=600
            )
            full = sweep_levels(
                console,
                "full stack",
                endpoint,
                levels,
                spec_maker(None, args.chunks_per_stream),
                args.tolerance,
                args.keep_going,
            )
        report["full_stack"] = [asdict(m) for m in full]
        first = full[0]
        if first.chunks_per_s > 0:
            tokens_per_chunk = first.tokens_per_s / first.chunks_per_s
            interval_ms = args.interval_ms or first.target_tpot_ms * tokens_per_chunk
            bare_tokens = round(args.chunks_per_stream / tokens_per_chunk)
    bare = run_bare(console, args, levels, interval_ms, spec_maker(interval_ms, bare_tokens))
    report["bare"] = [asdict(m) for m in bare]
    report["bare_interval_ms"] = interval_ms
    _conclude(console, report, full, bare, levels, args.tolerance)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


def run_bare(console: Console, args, levels: list[int], interval_ms: float, make_spec):
    proc, bare_url = start_bare_server(interval_ms)
    try:
        bare_endpoint = EndpointConfig(
            bare_url, "/v1/completions", "bare-sse", ignore_eos=True, request_timeout_s=600
        )
        return sweep_levels(
            console,
            f"bare FastAPI/uvicorn SSE ({interval_ms:.1f} ms interval)",
            bare_endpoint,
            levels,
            make_spec,
            args.tolerance,
            args.keep_going,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _conclude(console: Console, report: dict, full, bare, levels: list[int], tolerance: float):
    bare_c = ceiling(bare, tolerance)
    console.print(_describe("bare ceiling", bare_c, levels))
    if full is None:
        return
    full_c = ceiling(full, tolerance)
    console.print(_describe("full-stack ceiling", full_c, levels))
    if full_c and bare_c:
        ratio = full_c.chunks_per_s / bare_c.chunks_per_s
        report["ratio_full_to_bare_chunks_per_s"] = ratio
        console.print(f"full stack / bare (chunks/s at ceiling): {ratio:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
