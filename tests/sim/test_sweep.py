"""Knob sweeps: the cross product of config values, run in local processes or on Ray, with the
same results either way."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.app import PointSamples
from loadgen.config import LoadConfig, ReportConfig, SloConfig
from loadgen.workloads import RandomWorkload
from services.launcher import free_port
from supernode.sim import sweep
from supernode.sim.cli import main

KNOBS = [("num_prefill", (1, 2)), ("decode.mtp_acceptance", (0.5, 0.9))]


def _tasks(rates: tuple[float, ...] = (8.0,)) -> list[sweep.SweepTask]:
    samples = PointSamples(RandomWorkload(2048, 32), 40, 0)
    return sweep.sweep_tasks({}, KNOBS, rates, samples, LoadConfig(seed=0),
                             SloConfig({"ttft": 200.0}), ReportConfig(), True, "random",
                             "20261130-000000")


def test_knobs_parse_as_yaml_values_and_bad_ones_are_named() -> None:
    """`KEY=V1,V2` gives typed values; a missing key or value is an error saying so."""
    assert sweep.parse_knob("cache.plane=ub,vpc") == ("cache.plane", ("ub", "vpc"))
    assert sweep.parse_knob("num_decode=1,2") == ("num_decode", (1, 2))
    for bad in ("num_decode", "=1,2", "num_decode="):
        with pytest.raises(ValueError, match="KEY=V1,V2"):
            sweep.parse_knob(bad)


def test_every_combination_at_every_rate_is_one_point() -> None:
    """Two knobs of two values at two rates: eight points, each with its own config."""
    tasks = _tasks(rates=(4.0, 8.0))
    assert len(tasks) == 8
    assert {(t.config.num_prefill, t.config.decode.mtp_acceptance, t.load.request_rate)
            for t in tasks} == {(n, a, r) for n in (1, 2) for a in (0.5, 0.9) for r in (4, 8)}


def test_a_point_that_cannot_run_is_refused_before_any_runs() -> None:
    """A value the deployment rejects names the point and the reason."""
    samples = PointSamples(RandomWorkload(512, 8), 4, 0)
    with pytest.raises(ValueError, match=r"sweep point \{'decode.ep': 7\}"):
        sweep.sweep_tasks({}, [("decode.ep", (320, 7))], (1.0,), samples, LoadConfig(),
                          SloConfig(), ReportConfig(), True, "random")


def test_knobs_move_the_figures_they_should() -> None:
    """More MTP acceptance, fewer steps: lower TPOT; the points are deterministic, so parallel
    processes give exactly what one process gives."""
    tasks = _tasks()
    serial, parallel = sweep.run_sweep(tasks, workers=1), sweep.run_sweep(tasks, workers=2)
    assert serial == parallel
    tpot = {(p["knobs"]["num_prefill"], p["knobs"]["decode.mtp_acceptance"]):
            p["result"]["mean_tpot_ms"] for p in serial}
    assert tpot[(1, 0.9)] < tpot[(1, 0.5)] and tpot[(2, 0.9)] < tpot[(2, 0.5)]


def test_cli_sweep_writes_a_table_json_and_plots(tmp_path: Path) -> None:
    """`supernode sim --sweep` prints the table and writes JSON, CSV and a plot."""
    code = main(["--dataset-name", "random", "--random-input-len", "1024",
                 "--random-output-len", "16", "--num-prompts", "20", "--request-rate", "4",
                 "--sweep", "num_prefill=1,2", "--sweep-workers", "1", "--result-dir",
                 str(tmp_path), "--result-filename", "s.json"])
    assert code == 0
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["knobs"] == {"num_prefill": [1, 2]}
    assert [p["knobs"]["num_prefill"] for p in data["points"]] == [1, 2]
    assert all(p["result"]["completed"] == 20 and p["result"]["simulated"]
               for p in data["points"])
    assert (tmp_path / "s.csv").read_text().startswith("num_prefill,request_rate,completed")
    assert (tmp_path / "s.png").stat().st_size > 10_000


@pytest.fixture
def ray_head() -> Iterator[str]:
    """A one-node Ray cluster on loopback, started by its CLI and stopped by its process group.

    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray take the loopback address as the node's (on
    Linux it otherwise binds the machine's address); the driver needs it set too."""
    port = free_port("127.0.0.1")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    tmp_path = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths
    log = open(tmp_path / "ray.log", "wb")  # noqa: SIM115 - closed after the head stops
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", "--block",
         f"--temp-dir={tmp_path / 'ray'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    previous = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in (tmp_path / "ray.log").read_bytes():
            assert head.poll() is None and time.monotonic() < deadline, (
                (tmp_path / "ray.log").read_text(errors="replace"))
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # the head and every process it started
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        log.close()
        shutil.rmtree(tmp_path, ignore_errors=True)
        if previous is None:
            del os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = previous


@pytest.mark.timeout(300)
def test_a_sweep_on_a_ray_cluster_equals_the_local_one(ray_head: str) -> None:
    """The same points on a local Ray head (loopback) give exactly the local results."""
    tasks = _tasks()
    assert sweep.run_sweep(tasks, ray_address=ray_head) == sweep.run_sweep(tasks, workers=1)
