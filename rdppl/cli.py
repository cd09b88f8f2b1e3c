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
    from rdppl import __version__

    return f"rdppl {__version__}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rdppl`` command, with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
    """
    from rdppl import demo

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

    plot = commands.add_parser(
        "plot",
        help="plot the RD curves of saved results on one axes",
        description=(
            "Draw the rate-distortion curves of one or more saved results on one "
            "axes (mean over examples with a band of 2 standard errors, BDMC bounds "
            "where present), each labelled by its name, or by its file name where "
            "names repeat. Needs matplotlib (pip install 'rdppl[plot]')."
        ),
    )
    plot.add_argument("files", metavar="FILE", nargs="+", help="saved results")
    plot.add_argument(
        "-o",
        "--output",
        default="rd_curve.png",
        help="figure file; the suffix picks the format (default: %(default)s)",
    )
    plot.add_argument(
        "--log-distortion", action="store_true", help="logarithmic distortion axis"
    )
    plot.add_argument("--log-rate", action="store_true", help="logarithmic rate axis")
    plot.add_argument(
        "--no-band", action="store_true", help="draw no standard-error band"
    )
    plot.add_argument("--no-bdmc", action="store_true", help="draw no BDMC bounds")
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
    return parser


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
        return options.handler(options)
    except CommandError as error:
        print(f"rdppl {options.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rdppl: interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------------------------
# loading


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
    from rdppl import demo

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


# ---------------------------------------------------------------------------------
# the summary printed by `rdppl info`


def summarise(tree: Any, *, source: str | None = None) -> str:
    """A readable summary of a result tree, as printed by ``rdppl info``.

    Uses ``rdppl.summary`` where the installed rdppl has it, after a header
    describing the file; otherwise (or for trees it does not handle) a table of the
    rate, distortion and log Z at a few temperatures.

    Parameters
    ----------
    tree
        A result tree.
    source
        The file it was read from, shown in the header.

    Returns
    -------
    str
    """
    lines = _header(tree, source)
    table = _library_summary(tree)
    lines += [table] if table is not None else _curve_tables(tree)
    return "\n".join(lines)


def _library_summary(tree: Any) -> str | None:
    """``str(rdppl.summary(tree))``, or None where it is missing or does not apply."""
    import importlib
    import warnings

    try:
        module = importlib.import_module("rdppl.summary")
    except ImportError:
        return None
    function = getattr(module, "summary", None)
    if not callable(function) or "rate_distortion" not in tree.children:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(function(tree))
    except Exception:  # noqa: BLE001 - any failure falls back to the plain table
        return None


def _header(tree: Any, source: str | None) -> list[str]:
    attrs = dict(tree.attrs)
    title = tree.name or "(unnamed result)"
    lines = [f"{title}" + (f"  ({source})" if source else "")]
    groups = []
    for name, child in tree.children.items():
        sizes = ", ".join(f"{dim} {size}" for dim, size in child.sizes.items())
        groups.append(f"{name} ({sizes})" if sizes else name)
    lines.append("groups: " + ("; ".join(groups) if groups else "none"))
    facts = []
    for key, label in (
        ("observed_site", "observed"),
        ("distortion", "distortion"),
        ("num_examples", "examples"),
        ("num_chains", "chains"),
        ("num_temperatures", "temperatures"),
        ("beta_max", "beta_max"),
        ("trainer", "trainer"),
    ):
        if key in attrs:
            facts.append(f"{label} {_plain(attrs[key])}")
    curve = _curve_group(tree)
    if curve is not None and "example" in curve[1].dims and "num_examples" not in attrs:
        facts.insert(0, f"examples {curve[1].sizes['example']}")
    if facts:
        lines.append(", ".join(facts))
    if "kernel" in attrs:
        lines.append(f"kernel {_plain(attrs['kernel'])}")
    cost = []
    if "wall_time_seconds" in attrs:
        cost.append(f"wall time {float(attrs['wall_time_seconds']):.1f} s")
    if "num_gradient_evaluations" in attrs:
        cost.append(f"{int(attrs['num_gradient_evaluations']):,} gradient evaluations")
    if "rdppl_version" in attrs:
        cost.append(f"rdppl {attrs['rdppl_version']}")
    if cost:
        lines.append(", ".join(cost))
    return lines


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    return str(value)


def _curve_group(tree: Any) -> tuple[str, Any] | None:
    from rdppl.plot import CURVE_GROUPS

    for group in CURVE_GROUPS:
        if group in tree.children:
            return group, tree[group].to_dataset()
    return None


def _curve_tables(tree: Any) -> list[str]:
    """Mean (standard error) over examples at a few points of each curve group."""
    import numpy as np

    from rdppl.plot import CURVE_GROUPS

    lines = []
    for group in CURVE_GROUPS:
        if group not in tree.children:
            continue
        dataset = tree[group].to_dataset()
        index = next((d for d in ("beta", "rate_weight") if d in dataset.dims), None)
        if index is None:
            continue
        dataset = dataset.sortby(index)
        values = dataset[index].values
        chosen = _few_points(values)
        variables = [
            name
            for name in ("rate", "information", "distortion", "log_z")
            if name in dataset.data_vars
        ]
        count = dataset.sizes.get("example", 1)
        spread = " +/- standard error" if count > 1 else ""
        lines.append(f"{group}: mean over {count} examples{spread}")
        lines.append(f"{index:>11}" + "".join(f"{v:>22}" for v in variables))
        for position in chosen:
            row = f"{values[position]:>11.4g}"
            for name in variables:
                array = dataset[name].isel({index: position})
                mean = float(array.mean())
                cell = f"{mean:.4g}"
                if "example" in array.dims and count > 1:
                    error = float(array.std(ddof=1)) / np.sqrt(count)
                    cell += f" +/- {error:<7.2g}"
                row += f"{cell:>22}"
            lines.append(row.rstrip())
    if "bdmc" in tree.children:
        bounds = tree["bdmc"].to_dataset()
        if "gap" in bounds and "beta" in bounds.dims:
            gap = bounds["gap"]
            count = gap.sizes.get("example", 1)
            cells = []
            for beta in bounds["beta"].values:
                at = gap.sel(beta=beta)
                error = float(at.std(ddof=1)) / np.sqrt(count) if count > 1 else 0.0
                cells.append(f"beta* {beta:g}: {float(at.mean()):.3g} +/- {error:.2g}")
            lines.append("BDMC gap (nats): " + "; ".join(cells))
    name = next(
        (
            n
            for n in ("log_marginal_likelihood", "log_likelihood")
            if n in tree.children
        ),
        None,
    )
    if name is not None:
        group = tree[name].to_dataset()
        if name in group:
            lines.append(
                f"log p(x): mean {float(group[name].mean()):.4g} nats "
                f"over {group[name].size} examples"
            )
    return lines


def _few_points(values: Any, count: int = 6) -> list[int]:
    """Indices of about ``count`` values spread evenly on a log scale."""
    import numpy as np

    values = np.asarray(values, np.float64)
    positive = np.flatnonzero(values > 0)
    if positive.size <= count:
        return list(range(values.size))
    targets = np.geomspace(values[positive[0]], values[positive[-1]], count)
    chosen = {
        int(positive[np.argmin(np.abs(np.log(values[positive] / t)))]) for t in targets
    }
    return sorted(chosen)
