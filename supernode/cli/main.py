"""The `supernode` console script: one table of subcommands, each loaded only when used."""

from __future__ import annotations

import importlib
import sys

# name -> (module with main(argv) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("services.up.cli", "start every role as local processes or containers"),
    "serve": ("services.serve", "run one role: scheduler | prefill | decode | ems"),
    "estimate": ("supernode.cli.estimate", "price a decode step, a prefill batch or a model load"),
    "calibrate": ("supernode.cli.calibrate", "fit the hardware model to the paper's targets"),
    "bench": ("loadgen.cli", "drive an OpenAI endpoint and report SLO metrics"),
    "sim": ("supernode.sim.cli", "run the offline simulator in virtual time"),
    "fault": ("supernode.cli.fault", "inject, list or clear faults on a running supernode"),
    "scale": ("supernode.cli.scale", "resize the prefill or decode pool of a running up"),
    "autoscale": ("supernode.cli.autoscale", "scale a running up's pools on its metrics (HPA rule)"),
}


def usage() -> str:
    lines = ["usage: supernode COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'supernode COMMAND --help' for a command's flags."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from supernode import __version__

        print(f"supernode {__version__}")
        return 0
    entry = COMMANDS.get(args[0])
    if entry is None:
        print(f"supernode: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(entry[0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
