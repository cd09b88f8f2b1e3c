"""``python -m rdppl COMMAND`` (also installed as ``rdppl COMMAND``): see rdppl.cli."""

from __future__ import annotations

import sys

from rdppl.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
