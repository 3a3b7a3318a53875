"""`supernode bench` end to end against the scripted server: a sweep with an SLO, the vLLM
result schema, the per-request CSV, plots, and flag errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from loadgen.cli import main

VLLM_KEYS = {
    "date",
    "endpoint_type",
    "backend",
    "label",
    "model_id",
    "tokenizer_id",
    "num_prompts",
    "request_rate",
    "burstiness",
    "max_concurrency",
    "duration",
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "request_goodput",
    "output_throughput",
    "total_token_throughput",
    "max_output_tokens_per_s",
    "max_concurrent_requests",
} | {
    f"{s}_{m}_ms" for s in ("mean", "median", "std", "p99") for m in ("ttft", "tpot", "itl", "e2el")
}
VLLM_DETAIL_KEYS = {"input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors"}
# One server slot, 50 ms per request (10 ms TTFT + 4 x 10 ms): evenly spaced arrivals queue
# only above 20 req/s; an e2el SLO of 120 ms then fails for most requests.
SCRIPT = {"ttft_ms": 10, "itl_ms": 10, "serialize": True}


@pytest.fixture(scope="module")
def sweep_dir(scripted_base_url, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    status = main(
        [
            "--base-url",
            scripted_base_url,
            "--dataset-name",
            "random",
            "--num-prompts",
            "10",
            "--random-input-len",
            "8",
            "--random-output-len",
            "5",
            "--extra-body",
            json.dumps({"script": SCRIPT}),
            "--request-rate",
            "5,10,40",
            "--burstiness",
            "inf",
            "--goodput",
            "e2el:120",
            "--slo-attainment",
            "0.9",
            "--sweep-bisect-steps",
            "1",
            "--save-result",
            "--save-detailed",
            "--result-dir",
            str(out),
            "--result-filename",
            "run.json",
            "--plots",
            "--no-progress",
        ]
    )
    assert status == 0
    return out


def test_sweep_finds_the_highest_rate_meeting_the_slo(sweep_dir):
    """5 and 10 req/s never queue (all good); the bisection point 25 and 40 req/s queue past
    the 120 ms E2EL SLO for most requests, so the answer is 10 req/s."""
    sweep = json.loads((sweep_dir / "run-sweep.json").read_text())
    assert sweep["request_rates"] == [5.0, 10.0, 25.0, 40.0]
    attainment = [p["slo_attainment"] for p in sweep["points"]]
    assert min(attainment[:2]) >= 0.9 and max(attainment[2:]) < 0.9
    assert sweep["max_request_rate_meeting_slo"] == 10.0


def test_result_json_has_vllm_keys_and_units(sweep_dir):
    """Each point's JSON has vLLM bench serve's top-level keys (and detailed arrays), with
    latencies in ms and per-request times in s; the model was discovered from /v1/models."""
    result = json.loads((sweep_dir / "run-10qps.json").read_text())
    assert result.keys() >= VLLM_KEYS | VLLM_DETAIL_KEYS
    assert result["model_id"] == "scripted-model" and result["backend"] == "openai"
    assert result["completed"] == 10 and result["failed"] == 0 and result["request_rate"] == 10.0
    assert result["speedup"] == 1.0
    assert result["total_input_tokens"] == sum(result["input_lens"])
    # Units, not precision (tests/loadgen/test_timing.py checks that): ms here, s per request.
    assert 50 <= result["mean_e2el_ms"] < 1000 and 9 <= result["mean_itl_ms"] < 200
    assert all(0.010 <= ttft_s < 1.0 for ttft_s in result["ttfts"])
    assert all(len(itls) == 4 for itls in result["itls"])


def test_per_request_csv(sweep_dir):
    """The CSV has one row per request with its timings and SLO verdict."""
    with open(sweep_dir / "run-40qps.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and all(r["success"] == "1" for r in rows)
    assert "0" in {r["met_slo"] for r in rows} <= {"0", "1"}
    assert all(float(r["ttft_ms"]) >= 10 for r in rows)


def test_plots_exist_and_are_not_empty(sweep_dir):
    """Latency CDFs, throughput, latency and SLO attainment vs rate, and a page showing them."""
    plots = sweep_dir / "plots"
    names = [
        "latency_cdf.png",
        "throughput_vs_rate.png",
        "latency_vs_rate.png",
        "slo_attainment_vs_rate.png",
    ]
    for name in names:
        data = (plots / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
    page = (plots / "index.html").read_text()
    assert all(f'src="{name}"' in page for name in names)


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--request-rate", "0"),
        ("--burstiness", "-1"),
        ("--goodput", "ttfx:10"),
        ("--random-range-ratio", "1.5"),
        ("--metric-percentiles", "101"),
        ("--num-prompts", "x"),
    ],
)
def test_bad_flag_values_name_the_flag(flag, value, capsys):
    """A bad value exits with argparse's status 2 and an error that names the flag."""
    with pytest.raises(SystemExit) as exc:
        main([flag, value])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err
