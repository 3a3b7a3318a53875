"""`supernode sim`: bench's flags and report, the cluster's --config/--set, the command table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supernode.cli.main import main as supernode_main
from supernode.sim.cli import main


def test_writes_bench_results_for_a_sweep(tmp_path: Path) -> None:
    """A sweep writes bench's per-point JSON, sweep JSON and plots, and TTFT grows with the rate."""
    status = main([
        "--set", "num_decode=2", "--set", "routing_policy=round-robin",
        "--num-prompts", "50", "--random-input-len", "512", "--random-output-len", "16",
        "--request-rate", "5,50", "--goodput", "ttft:100", "--save-result",
        "--result-dir", str(tmp_path), "--result-filename", "sim.json", "--no-progress",
    ])
    assert status == 0
    points = [json.loads((tmp_path / f"sim-{r}qps.json").read_text()) for r in (5, 50)]
    for point in points:
        assert point["completed"] == 50 and point["model_id"] == "deepseek-r1"
        assert point["mean_ttft_ms"] > 30 and point["mean_tpot_ms"] > 5
    assert points[0]["mean_ttft_ms"] < points[1]["mean_ttft_ms"]
    assert (tmp_path / "sim-sweep.json").exists() and (tmp_path / "plots" / "index.html").exists()


def test_reports_model_time_whatever_the_config_speedup(tmp_path: Path) -> None:
    """Figures are model seconds, as `supernode bench --speedup S` reports them: a config at
    speedup 0.1 gives the same latencies as one at 1.0 and records its speedup in the JSON."""
    results = {}
    for speedup in (1.0, 0.1):
        out = tmp_path / str(speedup)
        assert main([
            "--set", f"speedup={speedup}", "--num-prompts", "10", "--random-input-len", "256",
            "--random-output-len", "8", "--request-rate", "4", "--save-result",
            "--result-dir", str(out), "--result-filename", "sim.json", "--no-progress",
        ]) == 0
        results[speedup] = json.loads((out / "sim.json").read_text())
    assert results[0.1]["speedup"] == 0.1 and results[1.0]["speedup"] == 1.0
    for key in ("mean_ttft_ms", "mean_tpot_ms", "duration", "request_throughput"):
        assert results[0.1][key] == results[1.0][key], key


def test_bad_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --set value is argparse's usage error (status 2) saying what is wrong."""
    with pytest.raises(SystemExit) as exc:
        main(["--set", "routing_policy=nope", "--num-prompts", "1"])
    assert exc.value.code == 2
    assert "unknown routing policy" in capsys.readouterr().err


def test_registered_as_a_supernode_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`supernode --help` lists `sim` among its commands."""
    assert supernode_main(["--help"]) == 0
    assert "sim" in capsys.readouterr().out
