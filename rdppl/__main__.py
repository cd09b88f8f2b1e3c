"""``python -m rdppl COMMAND`` (also ``rdppl COMMAND``): :mod:`rdppl.cli.commands`."""

from __future__ import annotations

import sys

from rdppl.cli.commands import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
