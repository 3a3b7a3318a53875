"""Streaming ceiling of the emulator vs a bare FastAPI/uvicorn SSE server (issue 5, item 7).

For each target, concurrency levels are run in increasing order (`stream_driver.run_level`)
until one fails; a level passes when no stream failed, all streams ran at once, the mean
client-observed TPOT is within `--tolerance` (5%, either side) of the target TPOT, and the
sustained chunk rate is within the tolerance of the rate the streams offer. A target's ceiling is its highest passing level,
with the sustained SSE chunks/s and output tokens/s measured there.

- bare: `bench/sse_server.py` started here in its own process, streaming chunks at a fixed
  interval (the full stack's modelled TPOT when `--base-url` is given, else `--interval-ms`).
- full stack (with `--base-url`, e.g. `supernode up` at http://127.0.0.1:8000/v1): the target
  of each stream is the modelled TPOT from the `--modelled-tpot-header` response header, or
  `--modelled-tpot-ms` for every stream.
The ratio printed is full-stack ceiling chunks/s / bare ceiling chunks/s.

Usage: .venv/bin/python bench/stream_ceiling.py [--base-url URL --model deepseek-r1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_driver import LevelMeasurement, LevelSpec, run_level

from loadgen.config import EndpointConfig

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
    p.add_argument("--chunks-per-stream", type=int, default=100, help="output tokens per stream")
    p.add_argument(
        "--interval-ms",
        type=float,
        default=None,
        help="bare server chunk interval (default 50, or the full stack's mean modelled TPOT)",
    )
    p.add_argument(
        "--client-procs", type=int, default=1, help="client processes sharing the streams"
    )
    p.add_argument(
        "--stagger-ms",
        type=float,
        default=None,
        help="spread of stream starts (default 1000), so the start is a ramp, not a connection storm",
    )
    p.add_argument("--tolerance", type=float, default=0.05, help="allowed TPOT excess over target")
    p.add_argument("--keep-going", action="store_true", help="run every level even after one fails")
    p.add_argument(
        "--base-url", default=None, help="full stack endpoint, e.g. http://127.0.0.1:8000/v1"
    )
    p.add_argument("--endpoint", default="/v1/completions")
    p.add_argument("--model", default="deepseek-r1")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--modelled-tpot-ms", type=float, default=None)
    p.add_argument("--modelled-tpot-header", default="x-supernode-modelled-tpot-ms")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    levels = sorted(int(x) for x in args.levels.split(","))
    console = Console(width=150)
    report: dict = {
        "levels": levels,
        "chunks_per_stream": args.chunks_per_stream,
        "client_procs": args.client_procs,
        "tolerance": args.tolerance,
    }

    def spec_maker(target_ms, header):
        stagger_s = (args.stagger_ms if args.stagger_ms is not None else 1000.0) / 1e3
        return lambda c: LevelSpec(
            c,
            args.chunks_per_stream,
            args.client_procs,
            stagger_s,
            args.prompt_len,
            target_ms,
            header,
        )

    full = None
    interval_ms = args.interval_ms or 50.0
    if args.base_url:
        endpoint = EndpointConfig(
            args.base_url,
            args.endpoint,
            args.model,
            ignore_eos=True,
            request_timeout_s=600,
            capture_headers=(args.modelled_tpot_header,),
        )
        full = sweep_levels(
            console,
            "full stack",
            endpoint,
            levels,
            spec_maker(args.modelled_tpot_ms, args.modelled_tpot_header),
            args.tolerance,
            args.keep_going,
        )
        report["full_stack"] = [asdict(m) for m in full]
        if args.interval_ms is None and full and full[0].target_tpot_ms == full[0].target_tpot_ms:
            interval_ms = full[0].target_tpot_ms
    proc, bare_url = start_bare_server(interval_ms)
    try:
        bare_endpoint = EndpointConfig(
            bare_url, "/v1/completions", "bare-sse", ignore_eos=True, request_timeout_s=600
        )
        bare = sweep_levels(
            console,
            f"bare FastAPI/uvicorn SSE ({interval_ms:g} ms interval)",
            bare_endpoint,
            levels,
            spec_maker(interval_ms, None),
            args.tolerance,
            args.keep_going,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    report["bare"] = [asdict(m) for m in bare]
    bare_c = ceiling(bare, args.tolerance)
    console.print(_describe("bare ceiling", bare_c, levels))
    if full is not None:
        full_c = ceiling(full, args.tolerance)
        console.print(_describe("full-stack ceiling", full_c, levels))
        if full_c and bare_c:
            ratio = full_c.chunks_per_s / bare_c.chunks_per_s
            report["ratio_full_to_bare_chunks_per_s"] = ratio
            console.print(f"full stack / bare (chunks/s at ceiling): {ratio:.2f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
