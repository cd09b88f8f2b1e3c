"""Command line: ``python -m rdppl demo`` (also installed as ``rdppl demo``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = "usage: rdppl demo [--out DIR] [--num-temperatures K] [--num-chains M] ..."


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a subcommand; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if arguments else 2
    command, rest = arguments[0], arguments[1:]
    if command == "demo":
        from rdppl.demo import main as demo

        return demo(rest)
    print(f"unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
