"""The `supernode` command table."""

import pytest

from supernode.cli.main import COMMANDS, main


def test_unknown_command_lists_the_known_ones(capsys) -> None:
    """A typo exits 2 and prints the command table."""
    assert main(["upp"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'upp'" in err and all(name in err for name in COMMANDS)


def test_help_and_version(capsys) -> None:
    """--help lists commands and exits 0; --version prints the version."""
    assert main(["--help"]) == 0 and "estimate" in capsys.readouterr().out
    assert main(["--version"]) == 0 and "supernode 0." in capsys.readouterr().out


def test_serve_needs_a_role(capsys) -> None:
    """`supernode serve` without a known role exits 2 naming the roles."""
    assert main(["serve", "router"]) == 2
    assert "scheduler|prefill|decode|ems" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_working_help(command: str, capsys) -> None:
    """`supernode COMMAND --help` prints a usage line and exits 0, for every command."""
    try:
        code = main([command, "--help"])
    except SystemExit as e:  # argparse's --help
        code = e.code
    assert code == 0
    assert "usage:" in capsys.readouterr().out


def test_serve_help_lists_the_roles(capsys) -> None:
    """`supernode serve --help` names every role and how to get its flags."""
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(role in out for role in ("scheduler", "prefill", "decode", "ems"))
    assert "serve ROLE --help" in out
