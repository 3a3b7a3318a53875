"""`supernode serve ROLE ...`: run one service process in the foreground."""

from __future__ import annotations

import importlib
import sys

ROLES = ("scheduler", "prefill", "decode", "ems")
USAGE = f"""usage: supernode serve {{{'|'.join(ROLES)}}} [FLAGS...]

Run one supernode service process in the foreground (what `supernode up` starts one of per
role, and what each container runs). `supernode serve ROLE --help` lists the role's flags.

roles:
  scheduler  the OpenAI HTTP endpoint, the global scheduler and the worker registry
  prefill    one prefill instance (registers with --scheduler)
  decode     one decode instance (registers with --scheduler)
  ems        one EMS replica: the prefix-cache and model-cache pool (in memory or on
             --redis-url)"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not args or args[0] not in ROLES:
        got = repr(args[0]) if args else "nothing"
        print(f"{USAGE.splitlines()[0]}\nsupernode serve: expected a role, got {got}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"services.{args[0]}.__main__")
    return int(module.main(args[1:]) or 0)
