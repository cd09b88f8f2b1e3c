"""The ``rdppl`` command line: ``demo``, ``info``, ``plot`` and ``--version``.

``python -m rdppl COMMAND`` and the installed ``rdppl COMMAND`` both call
:func:`main`. Each subcommand imports what it needs when it runs, so ``rdppl --help``
and ``rdppl info`` start without loading JAX. Expected failures (a missing file, a
file rdppl did not write, matplotlib missing) print one line ``rdppl: error: ...`` to
standard error and return exit code 1; usage errors return 2.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from rdppl.cli.info import summarise

__all__ = ["build_parser", "load_result", "main", "summarise"]

DESCRIPTION = (
    "Rate-distortion curves of NumPyro generative models by annealed importance "
    "sampling."
)
EPILOG = (
    "Run 'rdppl COMMAND --help' for a command's options. Results are the netCDF files "
    "(or Zarr stores) written by rdppl.to_netcdf / rdppl.to_zarr."
)


class CommandError(Exception):
    """An expected failure, reported as one line on standard error."""


def _version() -> str:
    from rdppl._version import __version__

    return f"rdppl {__version__}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rdppl`` command, with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
    """
    from rdppl.cli import demo

    parser = argparse.ArgumentParser(
        prog="rdppl", description=DESCRIPTION, epilog=EPILOG
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands"
    )

    demo_parser = commands.add_parser(
        "demo",
        help="run the main job: the RD curve of a linear Gaussian decoder",
        description=demo.DESCRIPTION,
    )
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(handler=_demo)

    info = commands.add_parser(
        "info",
        help="summarise a saved result (netCDF file or Zarr store)",
        description=(
            "Print a summary of a result saved by rdppl.to_netcdf or rdppl.to_zarr: "
            "its name, groups, schedule, examples, chains, and rate, distortion and "
            "log Z at a few temperatures."
        ),
    )
    info.add_argument(
        "file", metavar="FILE", help="a .nc file, or a Zarr store (.zarr directory)"
    )
    info.set_defaults(handler=_info)

    _add_plot_command(commands)
    return parser


def _add_plot_command(commands: argparse._SubParsersAction) -> None:
    """The ``rdppl plot`` subcommand and its options."""
    plot = commands.add_parser(
        "plot",
        help="plot the RD curves of saved results on one axes",
        description=(
            "Draw the rate-distortion curves of one or more saved results on one "
            "axes (mean over examples with a band of 2 standard errors, and a panel "
            "of BDMC gaps against beta* where present), each labelled by its name, "
            "or by its file name where names repeat. Needs matplotlib "
            "(pip install 'rdppl[plot]')."
        ),
    )
    plot.add_argument("files", metavar="FILE", nargs="+", help="saved results")
    plot.add_argument(
        "-o",
        "--output",
        default="rd_curve.png",
        help="figure file; the suffix picks the format (default: %(default)s)",
    )
    scale = plot.add_mutually_exclusive_group()
    scale.add_argument(
        "--log-distortion",
        action="store_const",
        const=True,
        help="logarithmic distortion axis (symlog where some distortion is <= 0; "
        "default: logarithmic only where a linear axis would squash the curve)",
    )
    scale.add_argument(
        "--linear-distortion",
        action="store_const",
        const=False,
        dest="log_distortion",
        help="linear distortion axis",
    )
    plot.add_argument(
        "--log-rate",
        action="store_true",
        help="logarithmic rate axis (symlog where some rate is <= 0)",
    )
    plot.add_argument(
        "--no-band", action="store_true", help="draw no standard-error band"
    )
    plot.add_argument("--no-bdmc", action="store_true", help="draw no BDMC panel")
    plot.add_argument(
        "--diagnostics",
        action="store_true",
        help="draw the diagnostics (importance ESS, k-hat, acceptance, step size) "
        "of a single result against beta instead",
    )
    plot.add_argument("--title", help="figure title")
    plot.add_argument(
        "--dpi", type=int, default=150, help="resolution (default: %(default)s)"
    )
    plot.set_defaults(handler=_plot)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rdppl`` command line; returns the process exit code.

    Parameters
    ----------
    argv
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 for an expected failure (reported on standard error), 2 for
        a usage error.
    """
    parser = build_parser()
    try:
        options = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    if options.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = options.handler(options)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:  # `rdppl info FILE | head`: the reader left; stop quietly
        _silence_stdout()
        return 1
    except CommandError as error:
        print(f"rdppl {options.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rdppl: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point standard output at the null device (Python docs, "Note on SIGPIPE").

    Python flushes standard output again at exit; after a broken pipe that would
    print one more BrokenPipeError.
    """
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced in-process (tests)
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, descriptor)
    os.close(null)


# ---------------------------------------------------------------------------------
# loading

_ZARR_MARKERS = (".zgroup", ".zmetadata", "zarr.json")


def load_result(path: str | os.PathLike) -> Any:
    """Read a saved result: a Zarr store (a directory) or a netCDF file.

    Parameters
    ----------
    path
        The file or store; a directory, or a name ending in ``.zarr``, is read with
        :func:`rdppl.from_zarr`, anything else with :func:`rdppl.from_netcdf`.

    Returns
    -------
    xarray.DataTree

    Raises
    ------
    CommandError
        For a missing path or a file that is not an rdppl result, with a one-line
        message naming it.
    """
    from rdppl.results import files

    target = pathlib.Path(path)
    if not target.exists():
        raise CommandError(f"no such file or directory: {str(path)!r}")
    if target.is_dir() and not any((target / m).exists() for m in _ZARR_MARKERS):
        raise CommandError(
            f"{str(path)!r} is a directory but not a Zarr store (no "
            f"{', '.join(_ZARR_MARKERS)}): not an rdppl result; rdppl reads the "
            ".nc files and .zarr stores written by rdppl.to_netcdf and rdppl.to_zarr"
        )
    zarr = target.is_dir() or target.suffix == ".zarr"
    reader = files.from_zarr if zarr else files.from_netcdf
    try:
        return reader(target)
    except ImportError as error:
        raise CommandError(str(error).splitlines()[0]) from error
    except files.ResultFileError as error:  # already names the file
        raise CommandError(" ".join(str(error).split())) from None
    except (OSError, ValueError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        raise CommandError(
            f"cannot read {str(path)!r} as an rdppl result: {message}"
        ) from None


# ---------------------------------------------------------------------------------
# commands


def _demo(options: argparse.Namespace) -> int:
    from rdppl.cli import demo

    try:
        demo.check_options(options)
    except ValueError as error:
        raise CommandError(str(error)) from None
    return demo.run(options)


def _info(options: argparse.Namespace) -> int:
    tree = load_result(options.file)
    print(summarise(tree, source=options.file))
    return 0


def _plot(options: argparse.Namespace) -> int:
    try:
        import matplotlib
    except ImportError as error:
        raise CommandError(
            "plotting needs matplotlib: pip install 'rdppl[plot]'"
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rdppl import plot

    trees = [load_result(path) for path in options.files]
    for tree, path in zip(trees, options.files, strict=True):
        _check_curve_variables(tree, path, diagnostics=options.diagnostics)
    try:
        if options.diagnostics:
            if len(trees) != 1:
                raise CommandError("--diagnostics draws a single result")
            figure = plot.plot_diagnostics(trees[0])
        else:
            names = [
                tree.name or pathlib.Path(p).stem
                for tree, p in zip(trees, options.files, strict=True)
            ]
            labels = [
                name if names.count(name) == 1 else f"{name} ({pathlib.Path(p).name})"
                for name, p in zip(names, options.files, strict=True)
            ]
            ax = plot.plot_rd_curve(
                *trees,
                labels=labels,
                band=None if options.no_band else 2.0,
                bdmc=not options.no_bdmc,
                log_distortion=options.log_distortion,
                log_rate=options.log_rate,
            )
            figure = ax.figure
        if options.title:
            figure.suptitle(options.title)
        figure.savefig(options.output, dpi=options.dpi, bbox_inches="tight")
    except ValueError as error:
        raise CommandError(" ".join(str(error).split())) from error
    except OSError as error:
        raise CommandError(f"cannot write {options.output!r}: {error}") from error
    finally:
        plt.close("all")
    print(f"wrote {options.output}")
    return 0


def _check_curve_variables(tree: Any, path: str, *, diagnostics: bool) -> None:
    """A one-line error naming the file for a curve group lacking a variable."""
    from rdppl.plot import CURVE_GROUPS

    if diagnostics:
        return
    for group, (rate, distortion, _) in CURVE_GROUPS.items():
        if group not in tree.children:
            continue
        variables = sorted(tree[group].data_vars)
        for name in (rate, distortion):
            if name not in variables:
                raise CommandError(
                    f"{str(path)!r}: group {group!r} has no variable {name!r} to "
                    f"plot (it has {', '.join(variables) or 'no variables'})"
                )
