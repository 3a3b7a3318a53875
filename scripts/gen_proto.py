"""Generate the Python gRPC code from proto/ into supernode/v1/ (committed; see tests/test_proto.py).

Usage: python scripts/gen_proto.py [OUT_ROOT]   (OUT_ROOT defaults to the repository root)
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def generate(out_root: Path) -> list[Path]:
    """Run protoc on every .proto under proto/; return the files written under out_root."""
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *map(str, protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in out_root.rglob("*_pb2*.py*"))


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
