"""`supernode sim` refuses a deployment that does not fit in HBM unless told to overcommit."""

from __future__ import annotations

import pytest

from supernode.sim.cli import main

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
