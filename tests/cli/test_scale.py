"""`supernode scale` and `supernode autoscale` flags, and what they say without an `up`."""

from __future__ import annotations

import pytest

from supernode.autoscale.hpa import RatePolicy, Target
from supernode.cli import autoscale, scale


def test_scale_takes_role_equals_count_pairs() -> None:
    args = scale.build_parser().parse_args(["decode=3", "prefill=2", "--no-wait"])
    assert args.sizes == [("decode", 3), ("prefill", 2)] and args.no_wait


@pytest.mark.parametrize("argv, words", [
    (["decode"], "expected prefill=N or decode=N"),
    (["ems=2"], "expected prefill=N or decode=N"),
    (["decode=two"], "whole number"),
    (["decode=0"], "1..32"),
    (["decode=33"], "1..32"),
])
def test_bad_scale_arguments_exit_2_naming_them(argv: list[str], words: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        scale.main(argv)
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_without_a_running_up_scale_and_autoscale_say_so(tmp_path, monkeypatch, capsys) -> None:
    """No state file for the port: exit 1 naming the port and where the file would be."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert scale.main(["decode=2", "--url", "http://127.0.0.1:18999"]) == 1
    err = capsys.readouterr().err
    assert "no `supernode up` serves port 18999" in err and str(tmp_path) in err
    assert autoscale.main(["--url", "http://127.0.0.1:18999", "--duration", "1"]) == 1
    assert "port 18999" in capsys.readouterr().err


def test_autoscale_targets_bounds_and_policies_parse() -> None:
    """Targets are POOL:METRIC=VALUE; the default is hpa.yaml's (decode waiting 4); policies
    are N/SECONDS; a pool without targets is left alone."""
    parser = autoscale.build_parser()
    args = parser.parse_args(["--target", "prefill:ttft=2.5", "--target", "decode:kv=0.8",
                              "--max-decode", "6", "--scale-up-policy", "4/15"])
    pools = autoscale.pool_autoscalers(args, parser)
    assert [(p.pool, p.targets) for p in pools] == [
        ("prefill", [Target("prefill", "ttft", 2.5)]), ("decode", [Target("decode", "kv", 0.8)])]
    assert pools[1].behavior.max_instances == 6
    assert pools[1].behavior.scale_up == RatePolicy(4, 15.0)
    default = autoscale.pool_autoscalers(parser.parse_args([]), parser)
    assert [(p.pool, p.targets) for p in default] == [("decode", [Target("decode", "waiting",
                                                                          4.0)])]
    assert default[0].behavior.scale_down_window_s == 300.0


@pytest.mark.parametrize("argv, words", [
    (["--target", "decode:qps=3"], "METRIC"),
    (["--target", "prefill:kv=0.5"], "kv is a decode metric"),
    (["--target", "decode:waiting=0"], "must be > 0"),
    (["--max-decode", "0"], "outside 1..32"),
    (["--min-decode", "5", "--max-decode", "2"], "--min-decode/--max-decode"),
    (["--scale-up-policy", "2"], "N/SECONDS"),
    (["--interval", "0"], "must be > 0"),
    (["--scale-down-window", "-1"], "must be >= 0"),
])
def test_bad_autoscale_flags_exit_2_naming_them(argv: list[str], words: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        autoscale.main(argv)
    assert e.value.code == 2 and words in capsys.readouterr().err
