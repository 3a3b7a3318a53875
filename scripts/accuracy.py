"""Write docs/accuracy.md: every published figure beside the hardware model (see its header).

    python scripts/accuracy.py           # rewrite docs/accuracy.md
    python scripts/accuracy.py --check   # exit 1 if docs/accuracy.md is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from supernode.perf.calib.accuracy import render_document

DOC = Path(__file__).resolve().parent.parent / "docs" / "accuracy.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with docs/accuracy.md instead of writing it")
    args = parser.parse_args(argv)
    text = render_document()
    if args.check:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is stale: run python scripts/accuracy.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
