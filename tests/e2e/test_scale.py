"""`supernode scale` and `supernode autoscale` against a running `supernode up` (process
runtime): new instances register (and load their model when loads are modelled), removed
ones drain first, and the autoscaler scales a pool up under a burst and back down."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from services.launcher import free_port
from supernode.cli.control import ControlClient
from tests.e2e.running_up import (
    CLI,
    SMALL_DECODE,
    Up,
    burst,
    decisions,
    ignore_sigint,
    running_up,
    wait_for,
    workers,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    with running_up(tmp_path_factory.mktemp("scale"), free_port("127.0.0.1"),
                    *SMALL_DECODE) as running:
        yield running


def test_scale_up_registers_and_serves_scale_down_drains(up: Up) -> None:
    """decode=2 starts decode-1, which registers and serves; decode=1 then stops decode-1
    while it runs requests: they all finish there without a failover, and it leaves."""
    r = up.cli("scale", "decode=2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["decode: 1 -> 2; starting decode-1", "decode: 2 registered"]
    assert workers(up)["decode-1"]["state"] == "ready"
    health = httpx.get(f"{up.url}/health", timeout=5).json()
    assert health["expected"]["decode"] == 2 and health["status"] == "ok"
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(burst, up.url, 12, 300)
        wait_for(lambda: workers(up)["decode-1"]["num_inflight"] > 0, 60, "decode-1 busy")
        r = up.cli("scale", "decode=1")
        results = load.result(timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["decode: 2 -> 1; draining decode-1", "decode: 1 registered"]
    assert all(x["status"] == 200 and x["tokens"] == 300 for x in results), results
    assert all(x["num_failovers"] == 0 for x in results), results
    assert any(x["decode_worker"] == "decode-1" for x in results)
    assert [w for w in workers(up) if w.startswith("decode")] == ["decode-0"]
    assert httpx.get(f"{up.url}/health", timeout=5).json()["expected"]["decode"] == 1
    out = up.output()
    assert "scale decode 2 -> 1; draining decode-1" in out and "decode-1 stopped (0)" in out


def test_autoscale_scales_decode_up_under_a_burst_and_back_down(up: Up, tmp_path: Path) -> None:
    """A burst that queues on the one decode (32 slots, 64 requests): the autoscaler (target 4
    waiting per instance, at most 3) goes 1 -> 3 and, 5 s after the burst, back to 1; every
    decision carries its inputs, every request completes; SIGINT stops it, even when it was
    started with SIGINT ignored (a background job)."""
    out = tmp_path / "autoscale.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [*CLI, "autoscale", "--url", up.url, "--target", "decode:waiting=4",
             "--max-decode", "3", "--interval", "1", "--scale-down-window", "5",
             "--scale-up-policy", "2/1", "--scale-down-policy", "2/1", "--duration", "120",
             "--json"], stdout=sink, stderr=subprocess.STDOUT, env=up.env,
            preexec_fn=ignore_sigint)
    try:
        wait_for(lambda: decisions(out), 30, "a first decision")
        results = burst(up.url, 64, 250)
        scaled = wait_for(lambda: [d for d in decisions(out) if d["outcome"] == "scaled"]
                          if any(d["outcome"] == "scaled" and d["desired"] == 1
                                 for d in decisions(out)) else None, 90, "a scale-down to 1")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert all(x["status"] == 200 and x["tokens"] == 250 for x in results)
    first_up = scaled[0]
    assert (first_up["current"], first_up["desired"]) == (1, 3), scaled
    (metric,) = first_up["metrics"]
    assert metric["metric"] == "waiting" and metric["value"] > 4 and metric["target"] == 4
    assert max(d["desired"] for d in decisions(out)) == 3
    assert scaled[-1]["desired"] == 1 and scaled[-1]["current"] > 1
    wait_for(lambda: [w for w in workers(up) if w.startswith("decode")] == ["decode-0"], 60,
             "the removed decodes to leave")


def test_a_scaled_in_worker_pays_its_model_load(tmp_path: Path) -> None:
    """With --model-load obs (speedup 50: a load of seconds), decode=2 starts decode-1, which
    registers as `loading` (counted by scale, never routed to) and turns `ready` later."""
    with running_up(tmp_path, free_port("127.0.0.1"), "--model-load", "obs", "--speedup",
                    "50") as up:
        r = up.cli("scale", "decode=2")
        assert r.returncode == 0, r.stderr
        assert "decode: 2 registered" in r.stdout
        assert workers(up)["decode-1"]["state"] == "loading"
        model_load = wait_for(lambda: (w := workers(up)["decode-1"])["state"] == "ready"
                              and w["model_load"], 120, "decode-1 ready")
        assert model_load["load_s"] > 0 and model_load["source"] in ("obs", "ems")


def _instances(up: Up) -> dict[str, dict]:
    client, _ = ControlClient.for_endpoint(up.url)
    try:
        return {i["name"]: i for i in client.instances()["instances"]}
    finally:
        client.close()


def _process_state(pid: int) -> str:
    """The state letter in /proc/PID/stat (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_runtime_faults_on_processes(up: Up, monkeypatch: pytest.MonkeyPatch) -> None:
    """`fault stall --via runtime` SIGSTOPs the process for its duration (then SIGCONT),
    `fault kill --via runtime` SIGKILLs it and supervision restarts it; `disconnect` is refused
    by the process runtime, naming what can do it."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", up.env["XDG_RUNTIME_DIR"])  # where its state file is
    pid = int(_instances(up)["decode-0"]["ref"])
    r = up.cli("fault", "stall", "decode-0", "--duration", "2", "--via", "runtime")
    assert r.returncode == 0 and '"kind": "pause"' in r.stdout, r.stderr
    assert _process_state(pid) == "T"
    wait_for(lambda: _process_state(pid) != "T", 30, "SIGCONT")
    r = up.cli("fault", "disconnect", "decode-0", "--duration", "2")
    assert r.returncode == 1 and "cannot cut one process off the network" in r.stderr
    r = up.cli("fault", "kill", "decode-0", "--via", "runtime")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: int(_instances(up)["decode-0"]["ref"]) != pid, 30, "a new decode-0")
    wait_for(lambda: "decode-0 restarted" in up.output(), 30, "the restart reported")
