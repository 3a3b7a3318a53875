"""What each container runs: commands, environment and the secret files copied into it."""

from __future__ import annotations

import io
import tarfile

from services.common.credentials import Credentials
from services.runtime import container_spec as specs
from supernode.config import load_config

SECRETS = Credentials(cluster_token="tok-123", api_keys=(("sk-a", "team-a"), ("sk-b", "")),
                      admin_key="adm-456")


def visible(spec: specs.Spec) -> str:
    return " ".join([*spec.command, *(f"{k}={v}" for k, v in spec.environment.items())])


def test_secrets_are_files_never_command_line_or_environment() -> None:
    """The scheduler gets the token, the admin key and the API keys as files named by *_FILE
    variables; no secret value is in a command or an environment value."""
    spec = specs.scheduler_spec(load_config(), SECRETS, "INFO", "iid")
    assert spec.files["cluster_token"] == b"tok-123" and spec.files["admin_key"] == b"adm-456"
    assert spec.files["api_keys"] == b'{"sk-a": "team-a", "sk-b": ""}'
    assert spec.environment["SUPERNODE_ADMIN_KEY_FILE"] == "/run/supernode/admin_key"
    assert spec.environment["SUPERNODE_API_KEYS_FILE"] == "/run/supernode/api_keys"
    worker = specs.worker_spec("decode", "decode-1", load_config(), SECRETS, "INFO", True)
    assert "admin_key" not in worker.files and "api_keys" not in worker.files
    for s in (spec, worker, specs.ems_spec(load_config(), SECRETS, "INFO")):
        assert not any(secret in visible(s) for secret in ("tok-123", "adm-456", "sk-a"))
        assert s.environment["SUPERNODE_CLUSTER_TOKEN_FILE"] == "/run/supernode/cluster_token"


def test_workers_register_under_their_name_on_the_private_network() -> None:
    spec = specs.worker_spec("prefill", "prefill-2", load_config(), SECRETS, "DEBUG", True)
    assert spec.command == ["serve", "prefill", "--port", "50051", "--metrics-port", "9400",
                            "--scheduler", "scheduler:50051", "--worker-id", "prefill-2",
                            "--ems", "ems:50051"]
    assert spec.environment["SUPERNODE_BIND_HOST"] == "0.0.0.0"
    assert "--ems" not in specs.worker_spec("decode", "d", load_config(), SECRETS, "INFO",
                                            False).command
    assert "redis://redis:6379/0" in specs.ems_spec(load_config(), SECRETS, "INFO").command


def test_the_archive_is_private_to_the_images_user() -> None:
    """Directories 0700 and files 0400, owned by uid 10001, under supernode/."""
    data = specs.files_archive({"config.yaml": b"a: 1\n", "tokenizer/t.json": b"{}"})
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"supernode", "supernode/tokenizer", "supernode/config.yaml",
                            "supernode/tokenizer/t.json"}
    for m in members.values():
        assert (m.uid, m.gid) == (10001, 10001)
        assert m.mode == (0o700 if m.isdir() else 0o400)


def test_the_containers_config_is_the_resolved_one_with_the_tokenizer_inside(tmp_path) -> None:
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text("{}")
    config = load_config(None, {"speedup": 0.5, "tokenizer_path": str(tokenizer)})
    files = specs.common_files(config, SECRETS)
    assert b"speedup: 0.5" in files["config.yaml"]
    assert b"tokenizer_path: /run/supernode/tokenizer/tokenizer.json" in files["config.yaml"]
    assert files["tokenizer/tokenizer.json"] == b"{}"


def test_with_several_served_models_workers_start_round_robin_as_processes_do() -> None:
    """The n-th container of a pool starts with the model the process runtime would give it."""
    config = load_config(None, {"served_models": ["deepseek-r1", "deepseek-r1@v2"]})
    models = [specs.worker_spec("decode", f"decode-{i}", config, SECRETS, "INFO", False, i)
              .command for i in range(3)]
    assert [c[c.index("--served-model") + 1] for c in models] == [
        "deepseek-r1", "deepseek-r1@v2", "deepseek-r1"]
    single = specs.worker_spec("decode", "decode-0", load_config(), SECRETS, "INFO", False, 1)
    assert "--served-model" not in single.command
