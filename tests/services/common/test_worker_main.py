"""Every role's entry point refuses to expose its gRPC server without a cluster token, and
names the cause."""

from __future__ import annotations

import importlib

import pytest

ROLE_ARGS = {
    "scheduler": [],
    "prefill": ["--scheduler", "127.0.0.1:1"],
    "decode": ["--scheduler", "127.0.0.1:1"],
    "ems": [],
}


@pytest.mark.parametrize("role", sorted(ROLE_ARGS))
def test_exposed_bind_without_a_token_exits_naming_the_cause(
        role: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`serve ROLE --host 0.0.0.0` without a cluster token exits 2 before binding anything,
    saying which variable to set."""
    for name in ("SUPERNODE_CLUSTER_TOKEN", "SUPERNODE_CLUSTER_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    main = importlib.import_module(f"services.{role}.__main__").main
    with pytest.raises(SystemExit) as e:
        main(["--host", "0.0.0.0", *ROLE_ARGS[role]])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0" in err and "SUPERNODE_CLUSTER_TOKEN" in err


@pytest.mark.parametrize("role", sorted(ROLE_ARGS))
def test_unreadable_token_file_exits_naming_the_flag(
        role: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A --cluster-token-file that cannot be read stops the process with the flag named."""
    main = importlib.import_module(f"services.{role}.__main__").main
    with pytest.raises(SystemExit) as e:
        main(["--cluster-token-file", "/nonexistent/token", *ROLE_ARGS[role]])
    assert e.value.code == 2
    assert "--cluster-token-file: cannot read /nonexistent/token" in capsys.readouterr().err
