"""Layer 6, the command line: ``rdppl demo``, ``rdppl info``, ``rdppl plot``.

:mod:`~rdppl.cli.commands` (the parser and :func:`~rdppl.cli.commands.main`),
:mod:`~rdppl.cli.info` (``rdppl info``'s tables) and :mod:`~rdppl.cli.demo` (the
demo run). :func:`main` runs the command line in Python.
"""

from rdppl.cli.commands import main

__all__ = ["main"]
