"""`supernode estimate load`: cold/warm start JSON, the readable table and flag errors."""

import json

import pytest

from supernode.cli.estimate import main

LOAD = ["load", "--model", "deepseek-r1", "--devices", "16", "--ep", "32"]


def _json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eight_instances_from_one_bucket(capsys):
    """8 instances x ~671 GB at 2.5 GB/s shared: cold = warm = about 8 x 269 s, with the
    breakdown naming the OBS read."""
    out = _json(capsys, LOAD + ["--source", "obs", "--instances", "8"])
    assert out["cold_start_s"] == pytest.approx(8 * out["model_bytes"] / 2.5e9, rel=0.01)
    assert out["warm_start_s"] == out["cold_start_s"]
    assert set(out["breakdown"]) == {"cold_start", "warm_start", "switch"}
    assert "obs_read" in out["breakdown"]["cold_start"]
    assert out["switch_s"] == pytest.approx(out["cold_start_s"] / 8, rel=0.01)


def test_ems_warm_start_is_seconds_and_cold_reads_obs_once(capsys):
    """With EMS the cold start is one OBS read plus an EMS read; warm is an EMS read."""
    ems = _json(capsys, LOAD + ["--source", "ems", "--instances", "8"])
    assert ems["breakdown"]["cold_start"]["obs_prefetch"] == pytest.approx(
        ems["model_bytes"] / 2.5e9, rel=0.01)
    assert ems["warm_start_s"] < 5 and "ems_read" in ems["breakdown"]["warm_start"]
    vpc = _json(capsys, LOAD + ["--source", "ems", "--instances", "8", "--plane", "vpc"])
    assert vpc["warm_start_s"] > ems["warm_start_s"]


def test_table_without_json(capsys):
    """Without --json a table shows each part for cold, warm and switch."""
    assert main(LOAD + ["--source", "dram"]) == 0
    out = capsys.readouterr().out
    assert "cold_start" in out and "dram_read" in out and "obs_read" in out


@pytest.mark.parametrize("argv, flag", [
    (LOAD + ["--source", "nfs"], "--source"),
    (LOAD + ["--source", "obs", "--instances", "0"], "--instances"),
    (["load", "--source", "obs"], "--devices"),
    (LOAD + ["--source", "ems", "--plane", "wifi"], "--plane"),
])
def test_bad_flags_are_named(capsys, argv, flag):
    """A bad flag exits 2 with a message naming it."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and flag in capsys.readouterr().err
