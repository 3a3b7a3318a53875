"""The secrets a process holds, and where they come from.

Every role may hold the cluster token (the gRPC plane, see services.common.grpc_server); the
scheduler also holds the API keys and the admin key (its HTTP endpoint, see
services.scheduler.auth). They are read once at start from flags, environment variables or
files and passed explicitly to what needs them; never from the deployment config, which
`supernode up` writes to disk and containers mount.

| secret | flag | environment (`*_FILE`: read from that file) |
|---|---|---|
| cluster token | `--cluster-token-file PATH` | `SUPERNODE_CLUSTER_TOKEN`, `SUPERNODE_CLUSTER_TOKEN_FILE` |
| API keys, default tenant | `--api-key KEY` (repeatable) | `VLLM_API_KEY` |
| API keys of tenants | `--api-keys-file PATH` | `SUPERNODE_API_KEYS`, `SUPERNODE_API_KEYS_FILE` |
| admin key | `--admin-key KEY` | `SUPERNODE_ADMIN_KEY`, `SUPERNODE_ADMIN_KEY_FILE` |

A flag wins over the environment; an empty variable counts as unset; giving both a value and
a `*_FILE` variable is an error. The API keys of tenants are YAML, one `key: tenant` line per
key (a tenant may have several keys); a tenant is a name of at most 64 letters, digits, `.`,
`_` and `-`, or "" for the default tenant.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_TENANT = ""
"""The tenant of `--api-key` / `VLLM_API_KEY` keys, the admin key and unauthenticated callers:
the cache namespace every request shared before tenants existed."""
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CLUSTER_TOKEN_ENV = "SUPERNODE_CLUSTER_TOKEN"
ADMIN_KEY_ENV = "SUPERNODE_ADMIN_KEY"
API_KEY_ENV = "VLLM_API_KEY"
API_KEYS_ENV = "SUPERNODE_API_KEYS"
SECRET_ENVS = (CLUSTER_TOKEN_ENV, ADMIN_KEY_ENV, API_KEYS_ENV)


class CredentialsError(ValueError):
    """A secret is missing, unreadable, ambiguous or malformed; the message names its source."""


@dataclass(frozen=True)
class Credentials:
    """What one process may present and must demand. Secrets never appear in its repr."""

    cluster_token: str | None = field(default=None, repr=False)
    """Required on every gRPC call (health checks excepted) when set."""
    api_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """(key, tenant) pairs accepted on /v1/*; none means /v1/* is open."""
    admin_key: str | None = field(default=None, repr=False)
    """Required on the operator routes when set; also valid on /v1/* (default tenant)."""

    def __post_init__(self) -> None:
        for key, tenant in self.api_keys:
            if not key or key != key.strip():
                raise CredentialsError("an API key is empty or has surrounding whitespace")
            if tenant != DEFAULT_TENANT and not TENANT_PATTERN.fullmatch(tenant):
                raise CredentialsError(f"tenant {tenant!r}: use up to 64 letters, digits, "
                                       "'.', '_' or '-'")
        tenants: dict[str, str] = {}
        for key, tenant in self.api_keys:
            if tenants.setdefault(key, tenant) != tenant:
                raise CredentialsError("one API key is given for two tenants")
        if self.admin_key is not None and self.admin_key in tenants:
            raise CredentialsError("the admin key is also an API key; they must differ")


def add_cluster_token_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster-token-file", default=None, metavar="PATH",
                        help="file holding the cluster token every gRPC call must carry "
                             f"(or set {CLUSTER_TOKEN_ENV} / {CLUSTER_TOKEN_ENV}_FILE)")


def add_http_auth_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-key", action="append", default=None, metavar="KEY",
                        help=f"require this key on /v1/* (repeatable; or set {API_KEY_ENV})")
    parser.add_argument("--api-keys-file", default=None, metavar="PATH",
                        help="YAML `key: tenant` lines: keys that select a tenant's cache "
                             f"namespace (or set {API_KEYS_ENV} / {API_KEYS_ENV}_FILE)")
    parser.add_argument("--admin-key", default=None, metavar="KEY",
                        help="require this key on /workers, /sd/targets, /metrics and admin "
                             f"routes (or set {ADMIN_KEY_ENV} / {ADMIN_KEY_ENV}_FILE)")


def credentials_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Credentials:
    """Resolve the flags added above (absent ones count as unset) against `environ`."""
    token = _secret(CLUSTER_TOKEN_ENV, environ, getattr(args, "cluster_token_file", None),
                    "--cluster-token-file", from_file=True)
    admin = _secret(ADMIN_KEY_ENV, environ, getattr(args, "admin_key", None), "--admin-key")
    default_keys = getattr(args, "api_key", None) or [environ.get(API_KEY_ENV, "")]
    keys = [(k, DEFAULT_TENANT) for k in default_keys if k]
    flag_file = getattr(args, "api_keys_file", None)
    tenants = _secret(API_KEYS_ENV, environ, flag_file, "--api-keys-file", from_file=True)
    if tenants:
        keys += parse_api_keys(tenants, flag_file or environ.get(f"{API_KEYS_ENV}_FILE")
                               or API_KEYS_ENV)
    return Credentials(cluster_token=token, api_keys=tuple(keys), admin_key=admin)


def parse_api_keys(text: str, source: str) -> list[tuple[str, str]]:
    """(key, tenant) pairs from a YAML `key: tenant` mapping read from `source`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CredentialsError(f"API keys ({source}): not YAML: {e}") from None
    if not isinstance(data, dict) or not data:
        raise CredentialsError(f"API keys ({source}): expected a `key: tenant` mapping")
    if not all(isinstance(k, str) and isinstance(t, str) for k, t in data.items()):
        raise CredentialsError(f"API keys ({source}): keys and tenants must be strings (quote "
                               "a key YAML would read as a number)")
    return list(data.items())


def child_environment(credentials: Credentials, environ: Mapping[str, str],
                      http: bool) -> dict[str, str]:
    """The environment for a child process holding `credentials`: `environ` without any
    secret variable, plus the cluster token and, when `http`, the API and admin keys."""
    hidden = {API_KEY_ENV, *SECRET_ENVS, *(f"{name}_FILE" for name in SECRET_ENVS)}
    env = {k: v for k, v in environ.items() if k not in hidden}
    if credentials.cluster_token:
        env[CLUSTER_TOKEN_ENV] = credentials.cluster_token
    if http and credentials.api_keys:
        env[API_KEYS_ENV] = json.dumps(dict(credentials.api_keys))
    if http and credentials.admin_key:
        env[ADMIN_KEY_ENV] = credentials.admin_key
    return env


def _secret(env: str, environ: Mapping[str, str], flag_value: str | None, flag: str,
            from_file: bool = False) -> str | None:
    """A flag's value (or the file it names), else $env, else the file named by $env_FILE."""
    if flag_value:
        return _read(flag_value, flag) if from_file else flag_value
    value, path = environ.get(env, ""), environ.get(f"{env}_FILE", "")
    if value and path:
        raise CredentialsError(f"set {env} or {env}_FILE, not both")
    if path:
        return _read(path, f"{env}_FILE")
    return value or None


def _read(path: str, source: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as e:
        raise CredentialsError(f"{source}: cannot read {path}: {e.strerror}") from None
    if not value:
        raise CredentialsError(f"{source}: {path} is empty")
    return value


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (a name other than localhost: False)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, credentials: Credentials) -> None:
    """Refuse to expose the gRPC plane beyond this machine without a cluster token: anyone who
    reaches an open registry can register as a worker and receive every prompt."""
    if not is_loopback(host) and not credentials.cluster_token:
        raise CredentialsError(
            f"--host {host} exposes the gRPC plane beyond this machine, and no cluster token "
            f"is set: set {CLUSTER_TOKEN_ENV} (or {CLUSTER_TOKEN_ENV}_FILE, or "
            "--cluster-token-file) to the same secret in every role, e.g. from "
            "`openssl rand -hex 32` (see docs/security.md)")
