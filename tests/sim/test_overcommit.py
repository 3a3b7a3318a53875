"""`supernode sim` refuses a deployment that does not fit in HBM unless told to overcommit."""

from __future__ import annotations

import pytest

from loadgen.config import LoadConfig
from loadgen.workloads import RandomWorkload
from supernode.config import load_config
from supernode.sim.cli import main
from supernode.sim.runner import simulate_samples

TINY = ["--set", "decode.num_devices=2", "--set", "decode.dp=4", "--set", "decode.ep=4"]
LOAD = ["--num-prompts", "4", "--random-input-len", "128", "--random-output-len", "4",
        "--request-rate", "4", "--no-progress"]


def test_refuses_without_the_flag(capsys):
    """Without --allow-overcommit the simulator exits 2 naming the instance and its need."""
    with pytest.raises(SystemExit) as exc:
        main(TINY + LOAD)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "decode instance (2 x ascend-910c" in err and "GiB" in err


def test_runs_with_the_flag_and_says_so(capsys):
    """With --allow-overcommit it simulates the requests and reports the overcommit."""
    assert main(TINY + LOAD + ["--allow-overcommit"]) == 0
    captured = capsys.readouterr()
    assert "OVERCOMMITTED" in captured.err and "simulated 4 requests" in captured.out


def test_simulated_requests_say_they_ran_overcommitted():
    """Every simulated request's `supernode` object says overcommitted, as the live one does."""
    config = load_config(None, {"decode.num_devices": 2, "decode.dp": 4, "decode.ep": 4,
                                "allow_overcommit": True})
    outcome = simulate_samples(config, RandomWorkload(128, 4).build(3, 0), LoadConfig(),
                               ignore_eos=True, detailed=True)
    assert [r.server_details["overcommitted"] for r in outcome.results] == [True] * 3
    fits = simulate_samples(load_config(), RandomWorkload(128, 4).build(1, 0), LoadConfig(),
                            ignore_eos=True, detailed=True)
    assert fits.results[0].server_details["overcommitted"] is False
