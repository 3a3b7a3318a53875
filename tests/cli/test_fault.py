"""`supernode fault`: flags to admin-API bodies, and bad flags refused by name."""

from __future__ import annotations

import pytest

from supernode.cli.fault import build_parser, fault_body, main


@pytest.mark.parametrize("argv, body", [
    (["fail-requests", "--status", "429", "--count", "3"],
     {"kind": "fail_requests", "status": 429, "count": 3, "duration_s": 0.0}),
    (["degrade-link", "--plane", "ub", "--factor", "4", "--target", "decode"],
     {"kind": "degrade_link", "plane": "ub", "factor": 4.0, "target": "decode",
      "duration_s": 0.0}),
    (["stall", "decode-0", "--duration", "2.5"],
     {"kind": "stall_worker", "target": "decode-0", "duration_s": 2.5}),
    (["kill", "prefill-1"], {"kind": "kill_worker", "target": "prefill-1"}),
    (["ems-unreachable", "--duration", "9", "--mode", "blackhole"],
     {"kind": "ems_unreachable", "duration_s": 9.0, "mode": "blackhole"}),
])
def test_each_command_builds_its_fault(argv: list[str], body: dict) -> None:
    """Every inject command maps onto the POST /admin/faults body the scheduler expects."""
    assert fault_body(build_parser().parse_args(argv)) == body


def test_connection_flags_go_before_or_after_the_command(monkeypatch) -> None:
    """--url and --admin-key work on either side of the command; the environment is the
    default."""
    monkeypatch.setenv("SUPERNODE_ADMIN_KEY", "from-env")
    p = build_parser()
    assert p.parse_args(["--url", "http://a", "list"]).url == "http://a"
    assert p.parse_args(["list", "--url", "http://b"]).url == "http://b"
    assert p.parse_args(["list"]).admin_key == "from-env"
    assert p.parse_args(["kill", "x", "--admin-key", "k"]).admin_key == "k"


@pytest.mark.parametrize("argv, flag", [
    (["degrade-link", "--plane", "ub", "--factor", "1"], "--factor"),
    (["degrade-link", "--plane", "nvlink", "--factor", "2"], "--plane"),
    (["fail-requests", "--status", "200"], "--status"),
    (["fail-requests", "--count", "0"], "--count"),
    (["stall", "decode-0", "--duration", "0"], "--duration"),
    (["ems-unreachable"], "--duration"),
])
def test_bad_flags_exit_2_naming_the_flag(argv: list[str], flag: str, capsys) -> None:
    """Out-of-range or missing values are refused before anything is sent."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and flag in capsys.readouterr().err


def test_an_unreachable_scheduler_is_exit_1_naming_it(capsys) -> None:
    """No server at --url: exit 1 with the URL in the message."""
    assert main(["--url", "http://127.0.0.1:9", "list"]) == 1
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err
