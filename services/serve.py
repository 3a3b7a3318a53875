"""`supernode serve ROLE ...`: run one service process in the foreground."""

from __future__ import annotations

import importlib
import sys

ROLES = ("scheduler", "prefill", "decode", "ems")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ROLES:
        got = repr(args[0]) if args else "nothing"
        print(f"usage: supernode serve {{{'|'.join(ROLES)}}} [--help]\n"
              f"supernode serve: expected a role, got {got}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"services.{args[0]}.__main__")
    return int(module.main(args[1:]) or 0)
