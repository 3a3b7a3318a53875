"""The state file that leads the CLI to a running `supernode up`: private, and checked."""

from __future__ import annotations

import os
import stat

import pytest

from supernode.cli.control import ControlError, UpState, read_state, state_path, write_state


def state(pid: int) -> UpState:
    return UpState(pid, "process", "http://127.0.0.1:8123", "http://127.0.0.1:9", "t0k3n",
                   "/tmp/x")


def test_the_state_file_is_private_and_found_by_port(tmp_path, monkeypatch) -> None:
    """0600 in a 0700 directory; read back by the endpoint's port."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = write_state(state(os.getpid()), 8123)
    assert path == state_path(8123) == tmp_path / "supernode" / "up-8123.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_state("http://127.0.0.1:8123/v1") == state(os.getpid())


def test_a_state_file_of_a_process_that_is_gone_is_not_used(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    write_state(state(2**22 + 12345), 8124)
    with pytest.raises(ControlError, match="is gone"):
        read_state("http://127.0.0.1:8124")


def test_a_directory_others_can_write_is_refused(tmp_path, monkeypatch) -> None:
    """Someone else could plant a state file (and so a control URL and token) there."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "supernode").mkdir(mode=0o700)
    write_state(state(os.getpid()), 8125)
    os.chmod(tmp_path / "supernode", 0o777)
    with pytest.raises(ControlError, match="writable by others"):
        read_state("http://127.0.0.1:8125")
    with pytest.raises(ControlError, match="writable by others"):
        write_state(state(os.getpid()), 8125)
