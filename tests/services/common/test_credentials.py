"""Where secrets come from (flags, environment, files), how bad ones are reported, the bind
rule, and what a child process inherits."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from services.common.credentials import (
    DEFAULT_TENANT,
    Credentials,
    CredentialsError,
    add_cluster_token_flag,
    add_http_auth_flags,
    check_bind,
    child_environment,
    credentials_from_args,
    is_loopback,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_http_auth_flags(parser)
    add_cluster_token_flag(parser)
    return parser.parse_args(list(argv))


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_nothing_configured_means_no_secrets() -> None:
    """No flag and no variable: no token, no keys (empty variables count as unset)."""
    c = credentials_from_args(parse(), {"VLLM_API_KEY": "", "SUPERNODE_CLUSTER_TOKEN": ""})
    assert c == Credentials()
    assert c.cluster_token is None and c.api_keys == () and c.admin_key is None


def test_environment_and_files_supply_each_secret(tmp_path: Path) -> None:
    """VLLM_API_KEY is a default-tenant key, the tenant mapping and the token and admin key
    come from variables or the files they name (surrounding whitespace stripped)."""
    env = {"VLLM_API_KEY": "k-default",
           "SUPERNODE_API_KEYS_FILE": write(tmp_path, "keys.yaml", "k-a: team-a\nk-b: team-b\n"),
           "SUPERNODE_CLUSTER_TOKEN_FILE": write(tmp_path, "token", "tok-123\n"),
           "SUPERNODE_ADMIN_KEY": "adm"}
    c = credentials_from_args(parse(), env)
    assert c.api_keys == (("k-default", DEFAULT_TENANT), ("k-a", "team-a"), ("k-b", "team-b"))
    assert c.cluster_token == "tok-123" and c.admin_key == "adm"
    inline = credentials_from_args(parse(), {"SUPERNODE_API_KEYS": '{"k-c": "team-c"}'})
    assert inline.api_keys == (("k-c", "team-c"),)


def test_flags_win_over_the_environment(tmp_path: Path) -> None:
    """--api-key (repeatable) replaces VLLM_API_KEY, --admin-key SUPERNODE_ADMIN_KEY, and the
    file flags the variables."""
    args = parse("--api-key", "f1", "--api-key", "f2", "--admin-key", "adm-flag",
                 "--cluster-token-file", write(tmp_path, "t", "tok-flag"),
                 "--api-keys-file", write(tmp_path, "k.yaml", "k-x: x\n"))
    env = {"VLLM_API_KEY": "env-key", "SUPERNODE_ADMIN_KEY": "adm-env",
           "SUPERNODE_CLUSTER_TOKEN": "tok-env", "SUPERNODE_API_KEYS": "k-y: y"}
    c = credentials_from_args(args, env)
    assert c.api_keys == (("f1", ""), ("f2", ""), ("k-x", "x"))
    assert (c.admin_key, c.cluster_token) == ("adm-flag", "tok-flag")


@pytest.mark.parametrize("env,args,needle", [
    ({"SUPERNODE_CLUSTER_TOKEN": "a", "SUPERNODE_CLUSTER_TOKEN_FILE": "/x"}, (),
     "SUPERNODE_CLUSTER_TOKEN or SUPERNODE_CLUSTER_TOKEN_FILE, not both"),
    ({"SUPERNODE_ADMIN_KEY_FILE": "/nonexistent/admin"}, (), "SUPERNODE_ADMIN_KEY_FILE"),
    ({}, ("--cluster-token-file", "/nonexistent/token"), "--cluster-token-file"),
    ({"SUPERNODE_API_KEYS": "- just\n- a list"}, (), "key: tenant"),
    ({"SUPERNODE_API_KEYS": "12345: team"}, (), "quote"),
    ({"SUPERNODE_API_KEYS": "k: 'bad tenant/x'"}, (), "tenant 'bad tenant/x'"),
    ({"SUPERNODE_API_KEYS": "k: a", "VLLM_API_KEY": "k"}, (), "two tenants"),
    ({"SUPERNODE_ADMIN_KEY": "k", "VLLM_API_KEY": "k"}, (), "admin key is also an API key"),
])
def test_bad_secrets_are_errors_naming_their_source(env: dict[str, str], args: tuple[str, ...],
                                                    needle: str) -> None:
    """Ambiguous, unreadable or malformed secrets raise CredentialsError saying which."""
    with pytest.raises(CredentialsError) as e:
        credentials_from_args(parse(*args), env)
    assert needle in str(e.value)


def test_an_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    """A token file with nothing in it is refused rather than read as 'no token'."""
    env = {"SUPERNODE_CLUSTER_TOKEN_FILE": write(tmp_path, "token", " \n")}
    with pytest.raises(CredentialsError, match="is empty"):
        credentials_from_args(parse(), env)


def test_secrets_never_appear_in_the_repr() -> None:
    """Logging or printing credentials shows no secret."""
    c = Credentials(cluster_token="tok-secret", api_keys=(("key-secret", "t"),),
                    admin_key="adm-secret")
    assert "secret" not in repr(c) and "secret" not in str(c)


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("10.0.0.7", False),
    ("myhost", False),
])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    """Only addresses this machine alone can reach count as loopback; other names do not."""
    assert is_loopback(host) is loopback


def test_exposed_bind_needs_a_cluster_token() -> None:
    """A non-loopback bind without a token is refused with how to set one; with a token, or on
    loopback, it is allowed."""
    with pytest.raises(CredentialsError, match="SUPERNODE_CLUSTER_TOKEN") as e:
        check_bind("0.0.0.0", Credentials())
    assert "--host 0.0.0.0" in str(e.value)
    check_bind("0.0.0.0", Credentials(cluster_token="t"))
    check_bind("127.0.0.1", Credentials())


def test_child_environment_carries_resolved_secrets_only() -> None:
    """A child gets the resolved token (and, for the HTTP role, the keys) as variables; the
    parent's secret variables and files are not passed on, everything else is."""
    parent = {"PATH": "/bin", "VLLM_API_KEY": "old", "SUPERNODE_CLUSTER_TOKEN_FILE": "/t",
              "SUPERNODE_ADMIN_KEY_FILE": "/a", "SUPERNODE_API_KEYS_FILE": "/k"}
    c = Credentials(cluster_token="tok", api_keys=(("k1", ""), ("k2", "team")),
                    admin_key="adm")
    worker = child_environment(c, parent, http=False)
    assert worker == {"PATH": "/bin", "SUPERNODE_CLUSTER_TOKEN": "tok"}
    scheduler = child_environment(c, parent, http=True)
    assert scheduler["SUPERNODE_ADMIN_KEY"] == "adm"
    assert json.loads(scheduler["SUPERNODE_API_KEYS"]) == {"k1": "", "k2": "team"}
    assert credentials_from_args(parse(), scheduler) == c
