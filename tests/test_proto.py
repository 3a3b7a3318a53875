"""The committed generated gRPC code matches proto/."""

from pathlib import Path

from scripts_gen import generate  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    """Regenerating from proto/ reproduces supernode/v1 byte for byte."""
    written = generate(tmp_path)
    assert written, "protoc produced nothing"
    for path in written:
        committed = ROOT / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run scripts/gen_proto.py"
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run scripts/gen_proto.py")
