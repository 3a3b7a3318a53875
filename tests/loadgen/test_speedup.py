"""`--speedup`: against a server running `speedup` model seconds per wall second, rates go in
and every figure comes out in model seconds (wall x speedup), so a slowed-down emulator reports
what one at full speed would."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest

from loadgen.cli import main
from loadgen.config import EndpointConfig, LoadConfig, ReportConfig, SloConfig
from loadgen.metrics import metrics_of_results
from loadgen.runner import run_benchmark
from loadgen.types import SampleRequest
from tests.loadgen.helpers import make_endpoint, make_sample, retry_under_contention

SPEEDUP = 0.5
TTFT_MS, ITL_MS = 80.0, 15.0
OVERHEAD_MS = 6.0  # wall ms of loopback and request handling, as in test_timing


def _endpoint(base_url: str, script: dict) -> EndpointConfig:
    return replace(make_endpoint(base_url, script), speedup=SPEEDUP)


async def test_latencies_are_reported_in_model_time(scripted_base_url):
    """A server whose wall delays are TTFT 80 ms and ITL 15 ms, run with speedup 0.5, reports
    half of each: TTFT, TPOT, ITL and E2EL medians are the scripted wall figures x 0.5."""

    async def attempt() -> None:
        samples = [make_sample(output_len=12) for _ in range(8)]
        load = LoadConfig(request_rate=10.0, burstiness=float("inf"), num_warmups=1)
        endpoint = _endpoint(scripted_base_url, {"ttft_ms": TTFT_MS, "itl_ms": ITL_MS})
        outcome = await run_benchmark(samples, endpoint, load)
        assert all(r.success for r in outcome.results), [r.error for r in outcome.results]
        stats = metrics_of_results(
            outcome.results, outcome.duration_s, ReportConfig(), SloConfig()
        ).stats
        ttft_ms, itl_ms = TTFT_MS * SPEEDUP, ITL_MS * SPEEDUP
        assert ttft_ms <= stats["ttft"].median_ms <= ttft_ms + OVERHEAD_MS * SPEEDUP
        assert abs(stats["tpot"].median_ms - itl_ms) < 1.0 * SPEEDUP
        assert abs(stats["itl"].median_ms - itl_ms) < 1.5 * SPEEDUP
        e2el_ms = ttft_ms + 11 * itl_ms
        assert e2el_ms <= stats["e2el"].median_ms <= e2el_ms + OVERHEAD_MS * SPEEDUP

    await retry_under_contention(attempt)


async def test_request_rate_is_model_time(scripted_base_url):
    """10 req/s of model time at speedup 0.5 is 5 req/s of wall time: four evenly spaced
    requests take at least 0.8 wall s, yet are reported 0.1 model s apart, and the run's
    duration is its wall duration x 0.5."""
    samples = [make_sample(output_len=2) for _ in range(4)]
    load = LoadConfig(request_rate=10.0, burstiness=float("inf"))
    started = time.perf_counter()
    outcome = await run_benchmark(samples, _endpoint(scripted_base_url, {}), load)
    wall_s = time.perf_counter() - started
    assert wall_s >= 0.8
    starts = [r.started_at_s for r in outcome.results]
    assert np.diff(starts) == pytest.approx([0.1] * 3, abs=0.01)
    assert outcome.duration_s == pytest.approx(wall_s * SPEEDUP, abs=0.02)


async def test_trace_timestamps_are_model_time(scripted_base_url):
    """Trace offsets 0, 0.1, 0.2 model s are released 0.2 wall s apart at speedup 0.5 and
    reported at their model offsets."""
    samples = [SampleRequest((1000, 1001), 2, 2, offset) for offset in (0.0, 0.1, 0.2)]
    started = time.perf_counter()
    outcome = await run_benchmark(samples, _endpoint(scripted_base_url, {}), LoadConfig())
    assert time.perf_counter() - started >= 0.4
    starts = [r.started_at_s for r in outcome.results]
    assert starts == pytest.approx([0.0, 0.1, 0.2], abs=0.01)


def test_cli_records_speedup_and_judges_slos_in_model_time(scripted_base_url, tmp_path):
    """`--speedup 0.5` is recorded in the result JSON; a 40 wall-ms TTFT is 20 model ms, so a
    30 ms TTFT SLO is met by every request and the JSON's latencies are model ms."""
    status = main(
        [
            "--base-url", scripted_base_url, "--num-prompts", "4", "--random-input-len", "8",
            "--random-output-len", "3", "--extra-body", json.dumps({"script": {"ttft_ms": 40}}),
            "--request-rate", "20", "--burstiness", "inf", "--speedup", str(SPEEDUP),
            "--goodput", "ttft:30", "--save-result", "--result-dir", str(tmp_path),
            "--result-filename", "run.json", "--no-progress",
        ]
    )  # fmt: skip
    assert status == 0
    result = json.loads((tmp_path / "run.json").read_text())
    assert result["speedup"] == SPEEDUP and result["request_rate"] == 20.0
    assert 20.0 <= result["mean_ttft_ms"] < 30.0
    assert result["slo_attainment"] == 1.0


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "x"])
def test_bad_speedup_is_a_usage_error(value, capsys):
    """--speedup must be a finite number > 0; anything else is argparse's error naming it."""
    with pytest.raises(SystemExit) as exc:
        main(["--speedup", value])
    assert exc.value.code == 2
    assert "--speedup" in capsys.readouterr().err


def test_endpoint_rejects_a_non_positive_speedup():
    """EndpointConfig refuses a speedup that is not a finite number > 0."""
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="speedup"):
            EndpointConfig(base_url="http://x", speedup=bad)
