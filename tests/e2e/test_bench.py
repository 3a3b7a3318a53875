"""`supernode bench` against a real cluster: a two-point rate sweep with SLOs, saved and plotted.

The client-side figures must agree with what the cluster says it modelled for each request
(the `supernode` object on the final usage chunk, kept in the per-request CSV). Tolerances as
in test_timing: observed TTFT in [modelled, modelled x 1.1 + 100 ms] per request (the mean within
+50 ms); TPOT within 5% + 1 ms, plus
one decode step spread over the request's tokens: a request joins the running batch at the next
step boundary, a wait the client sees but the modelled TPOT (steps that made its tokens) omits.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.cli import main as bench_main
from services.launcher import Cluster
from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e

NUM_PROMPTS = 12
RATES = (4.0, 8.0)
TTFT_SLO_MS = 200.0
TPOT_SLO_MS = 13.0
DECODE_STEP_MS = 21.0
"""The default deployment's decode step at low batch (model ms, speedup 1)."""
VLLM_KEYS = (
    "date", "backend", "model_id", "tokenizer_id", "num_prompts", "request_rate", "burstiness",
    "max_concurrency", "duration", "completed", "total_input_tokens", "total_output_tokens",
    "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
    "max_output_tokens_per_s", "max_concurrent_requests",
    *(f"{stat}_{metric}_ms" for metric in ("ttft", "tpot", "itl", "e2el")
      for stat in ("mean", "median", "std", "p99")),
)


@pytest.fixture(scope="module")
def bench_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("bench-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def result_dir(bench_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-results")
    status = bench_main([
        "--base-url", bench_cluster.endpoint, "--dataset-name", "random",
        "--num-prompts", str(NUM_PROMPTS), "--random-input-len", "1024",
        "--random-range-ratio", "0.5", "--random-output-len", "32",
        "--request-rate", ",".join(f"{r:g}" for r in RATES), "--seed", "3",
        "--goodput", f"ttft:{TTFT_SLO_MS:g}", f"tpot:{TPOT_SLO_MS:g}",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
        "--save-result", "--plots", "--result-dir", str(out), "--result-filename", "run.json",
        "--no-progress",
    ])
    assert status == 0
    return out


def tpot_slack_ms(row: dict) -> float:
    """How far a request's client TPOT may sit from its modelled TPOT."""
    return 0.05 * float(row["modelled_tpot_ms"]) + 1.0 + DECODE_STEP_MS / (
        int(row["output_tokens"]) - 1)


def _point(result_dir: Path, rate: float) -> tuple[dict, list[dict]]:
    path = result_dir / f"run-{rate:g}qps.json"
    with open(path.with_suffix(".csv"), newline="") as f:
        return json.loads(path.read_text()), list(csv.DictReader(f))


@pytest.mark.parametrize("rate", RATES)
def test_result_has_vllm_keys_units_and_every_request(result_dir: Path, rate: float) -> None:
    """Each point's JSON has vLLM's keys, counts every request, and its units (ms, s) agree with the
    CSV."""
    result, rows = _point(result_dir, rate)
    assert [k for k in VLLM_KEYS if k not in result] == []
    assert result["completed"] == NUM_PROMPTS and result["failed"] == 0
    assert result["request_rate"] == rate
    assert result["total_output_tokens"] == sum(int(r["expected_output_len"]) for r in rows)
    # Units: latencies in ms (the CSV's per-request ms agree), duration in s.
    ttfts_ms = [float(r["ttft_ms"]) for r in rows]
    assert result["mean_ttft_ms"] == pytest.approx(sum(ttfts_ms) / len(ttfts_ms), abs=0.001)
    assert NUM_PROMPTS / rate / 3 < result["duration"] < NUM_PROMPTS / rate * 3 + 2
    assert result["request_throughput"] == pytest.approx(NUM_PROMPTS / result["duration"])


@pytest.mark.parametrize("rate", RATES)
def test_latencies_track_the_modelled_figures(result_dir: Path, rate: float) -> None:
    """Each request's client TTFT/TPOT against the cluster's own modelled figures for it."""
    result, rows = _point(result_dir, rate)
    for r in rows:
        modelled_ttft, modelled_tpot = float(r["modelled_ttft_ms"]), float(r["modelled_tpot_ms"])
        assert modelled_ttft <= float(r["ttft_ms"]) <= modelled_ttft * 1.10 + 100
        assert abs(float(r["tpot_ms"]) - modelled_tpot) <= tpot_slack_ms(r), r
    mean_modelled_ttft = sum(float(r["modelled_ttft_ms"]) for r in rows) / len(rows)
    assert mean_modelled_ttft <= result["mean_ttft_ms"] <= mean_modelled_ttft * 1.10 + 50


@pytest.mark.parametrize("rate", RATES)
def test_goodput_follows_the_modelled_figures(result_dir: Path, rate: float) -> None:
    """A request the model puts well inside both SLOs is good; one it puts over is not; the
    JSON's goodput counts exactly the CSV's good requests."""
    result, rows = _point(result_dir, rate)
    for r in rows:
        ttft, tpot = float(r["modelled_ttft_ms"]), float(r["modelled_tpot_ms"])
        surely_good = ttft * 1.10 + 100 < TTFT_SLO_MS and tpot + tpot_slack_ms(r) < TPOT_SLO_MS
        surely_bad = ttft > TTFT_SLO_MS or tpot - tpot_slack_ms(r) > TPOT_SLO_MS
        if surely_good or surely_bad:
            assert r["met_slo"] == ("1" if surely_good else "0"), r
    num_good = sum(r["met_slo"] == "1" for r in rows)
    assert result["num_good_requests"] == num_good
    assert result["slo_attainment"] == pytest.approx(num_good / NUM_PROMPTS)
    assert result["request_goodput"] == pytest.approx(num_good / result["duration"])
    assert result["goodput_slos_ms"] == {"ttft": TTFT_SLO_MS, "tpot": TPOT_SLO_MS}


def test_sweep_summary_and_plots(result_dir: Path) -> None:
    """The sweep JSON names the highest rate meeting the SLO attainment; every plot and the index
    page are written."""
    sweep = json.loads((result_dir / "run-sweep.json").read_text())
    assert sweep["request_rates"] == list(RATES)
    assert [p["completed"] for p in sweep["points"]] == [NUM_PROMPTS] * len(RATES)
    passing = [p["request_rate"] for p in sweep["points"] if p["slo_attainment"] >= 0.9]
    assert sweep["max_request_rate_meeting_slo"] == (max(passing) if passing else None)
    plots = result_dir / "plots"
    pngs = ("latency_cdf.png", "throughput_vs_rate.png", "latency_vs_rate.png",
            "slo_attainment_vs_rate.png")
    for name in pngs:
        data = (plots / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name
    page = (plots / "index.html").read_text()
    assert all(name in page for name in pngs)


def _run(cluster: Cluster, out: Path, name: str, *args: str) -> None:
    status = bench_main([
        "--base-url", cluster.endpoint, "--dataset-name", "random", "--num-prompts", "8",
        "--random-input-len", "2048", "--random-output-len", "8", "--seed", "7",
        "--save-result", "--result-dir", str(out), "--result-filename", name, "--no-progress",
        *args])
    assert status == 0


def test_repeated_runs_and_sweep_points_start_cold(bench_cluster: Cluster,
                                                    tmp_path: Path) -> None:
    """Fresh prompts for every run and every sweep point: two identical runs report the same
    cached-token figures (none, for random prompts), and so does each point of a sweep;
    --reuse-prompts sends the same prompts again on purpose, and the second run hits."""
    _run(bench_cluster, tmp_path, "a.json", "--request-rate", "4")
    _run(bench_cluster, tmp_path, "b.json", "--request-rate", "4")
    for name in ("a.json", "b.json"):
        result = json.loads((tmp_path / name).read_text())
        assert result["total_cached_tokens"] == 0 and result["prefix_cache_hit_rate"] == 0.0
    _run(bench_cluster, tmp_path, "s.json", "--request-rate", "2,16")
    points = json.loads((tmp_path / "s-sweep.json").read_text())["points"]
    assert [p["total_cached_tokens"] for p in points] == [0, 0]
    _run(bench_cluster, tmp_path, "r1.json", "--request-rate", "4", "--reuse-prompts")
    _run(bench_cluster, tmp_path, "r2.json", "--request-rate", "4", "--reuse-prompts")
    reused = json.loads((tmp_path / "r2.json").read_text())
    assert reused["prefix_cache_hit_rate"] > 0.9


def test_ttft_does_not_fall_with_load(bench_cluster: Cluster, tmp_path: Path) -> None:
    """A random workload's median TTFT at 20 req/s (prefill queues) is not below its value at
    2 req/s, and the achieved arrival rate is the offered one, not the throughput."""
    _run(bench_cluster, tmp_path, "t.json", "--request-rate", "2,20", "--num-prompts", "30")
    low, high = json.loads((tmp_path / "t-sweep.json").read_text())["points"]
    assert high["median_ttft_ms"] >= low["median_ttft_ms"]
    assert high["request_rate_achieved"] > 2 * low["request_rate_achieved"]
