"""BDMC figures: the gap against ``beta*`` and against the number of temperatures.

:func:`draw_bdmc_panel` draws, in a panel of its own under the RD curve of
:func:`rdppl.plot.plot_rd_curve`, the mean BDMC gap (upper minus lower bound on
``log p(x)``) at each ``beta*`` with error bars of 2 standard errors, as it is: a
mean gap below zero (noise around an exact AIS estimate, the sign of a good
certificate) is drawn below the zero line, never clipped. The bounds hold for data
simulated from the model at ``beta*``, not the curve's data, so they are drawn
against ``beta*`` rather than at the simulated data's distortion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from rdppl import results
from rdppl.plot.axes import (
    mean_and_standard_error,
    on_beta_axis,
    plain_number,
    pyplot,
    tidy_log_axis,
)

__all__ = ["bdmc_gaps", "draw_bdmc_panel", "plot_bdmc_gap"]


def bdmc_gaps(tree: xr.DataTree) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``beta*``, the mean BDMC gap over simulated examples and its standard error.

    The gap is ``upper - lower`` as recorded (or computed from the bounds), negative
    values included. ``None`` for a tree without a usable ``bdmc`` group.
    """
    if "bdmc" not in tree.children:
        return None
    bounds = on_beta_axis(tree["bdmc"].to_dataset())
    if "gap" in bounds.data_vars:
        gap = bounds["gap"]
    elif {"lower", "upper"} <= set(bounds.data_vars):
        gap = bounds["upper"] - bounds["lower"]
    else:
        return None
    if results.BETA_DIM not in gap.dims:
        return None
    mean, error = mean_and_standard_error(gap)
    return np.asarray(bounds[results.BETA_DIM].values, np.float64), mean, error


def draw_bdmc_panel(
    ax: Any,
    entries: Sequence[tuple[str, str | None, np.ndarray, np.ndarray, np.ndarray]],
    *,
    error_bars: float = 2.0,
) -> None:
    """Draw mean BDMC gaps against ``beta*`` on ``ax``, one series per entry.

    Parameters
    ----------
    ax
        Matplotlib axes (the panel).
    entries
        ``(label, colour, beta*, mean gap, standard error)`` per result.
    error_bars
        Half-length of the error bars in standard errors.
    """
    for label, colour, betas, mean, error in entries:
        ax.errorbar(
            betas,
            mean,
            yerr=error_bars * error if np.any(error > 0) else None,
            fmt="D",
            color=colour,
            markersize=5,
            capsize=3,
            label=f"{label}: BDMC gap ± {error_bars:g} s.e.",
        )
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--", label="no gap")
    betas = np.concatenate([entry[2] for entry in entries])
    if betas.size and np.all(betas > 0):
        ax.set_xscale("log")
        ax.set_xlim(betas.min() / 2.0, betas.max() * 2.0)
        tidy_log_axis(ax.xaxis)
    ax.set_xlabel("beta* (data simulated from the model at beta*)")
    ax.set_ylabel("gap (nats per\nexample)")
    ax.set_title(
        "BDMC: upper - lower bound on log p(x) of simulated data; ~0 certifies AIS",
        fontsize="small",
    )
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)


def plot_bdmc_gap(
    num_temperatures: Sequence[int] | None,
    trees: Sequence[xr.DataTree],
    *,
    ax: Any = None,
    error_bars: float | None = 2.0,
    yscale: str = "log",
) -> Any:
    """Plot the mean BDMC gap at each ``beta*`` against the number of temperatures.

    One line per ``beta*``, in increasing number of temperatures, on log-log axes,
    with error bars of ``error_bars`` standard errors over the simulated examples
    (standard deviation, ``ddof=1``, over the square root of their number).

    Parameters
    ----------
    num_temperatures
        The number of AIS temperatures of each tree's schedule, or ``None`` to read
        each tree's ``num_temperatures`` attribute (results of :func:`rdppl.rd_curve`
        with ``bdmc_betas`` have it).
    trees
        Results of :func:`rdppl.bdmc` (or of :func:`rdppl.rd_curve` with
        ``bdmc_betas``), one per entry of ``num_temperatures``, with the same
        ``beta*``.
    ax
        Matplotlib axes (default: a new figure).
    error_bars
        Half-length of the error bars in standard errors (default 2); ``None`` or
        ``0`` draws none.
    yscale
        ``"log"`` (default; means at or below zero, consistent with no gap, cannot be
        shown and error bars reaching below zero are clipped), ``"symlog"`` (linear
        below 1 nat) or ``"linear"``.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If the trees and numbers of temperatures do not pair up, or a tree lacks a
        ``bdmc`` group.
    """
    if not trees:
        raise ValueError("give at least one BDMC result")
    if num_temperatures is None:
        missing = [i for i, t in enumerate(trees) if "num_temperatures" not in t.attrs]
        if missing:
            raise ValueError(
                f"trees {missing} have no 'num_temperatures' attribute: pass "
                "num_temperatures"
            )
        num_temperatures = [int(tree.attrs["num_temperatures"]) for tree in trees]
    if len(num_temperatures) != len(trees):
        raise ValueError("give one BDMC result per number of temperatures")
    if yscale not in ("log", "symlog", "linear"):
        raise ValueError(f"yscale must be 'log', 'symlog' or 'linear', got {yscale!r}")
    for index, tree in enumerate(trees):
        if "bdmc" not in tree.children:
            raise ValueError(
                f"tree {index} has no 'bdmc' group; it has {sorted(tree.children)}"
            )
    order = np.argsort(np.asarray(num_temperatures))
    temperatures = np.asarray(num_temperatures)[order]
    groups = [on_beta_axis(trees[i]["bdmc"].to_dataset()) for i in order]
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.0))
    statistics = [mean_and_standard_error(group["gap"]) for group in groups]
    gaps = np.stack([mean for mean, _ in statistics])
    errors = np.stack([error for _, error in statistics])
    betas = groups[0][results.BETA_DIM].values
    for column, beta in enumerate(betas):
        ax.errorbar(
            temperatures,
            gaps[:, column],
            yerr=error_bars * errors[:, column] if error_bars else None,
            fmt="o-",
            capsize=3,
            markersize=4,
            label=f"beta* = {beta:g}",
        )
    ax.set_xscale("log")
    if yscale == "log":
        ax.set_yscale("log", nonpositive="clip")
    elif yscale == "symlog":
        ax.set_yscale("symlog", linthresh=1.0, linscale=0.6)
    # the numbers of temperatures themselves are the x ticks
    from matplotlib import ticker

    ax.xaxis.set_major_locator(ticker.FixedLocator(temperatures))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(plain_number))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    if yscale == "log":
        tidy_log_axis(ax.yaxis)
    ax.set_xlabel("AIS temperatures")
    ax.set_ylabel("BDMC gap (nats)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, which="both")
    return ax
