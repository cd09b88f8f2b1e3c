"""Figures of rate-distortion results (matplotlib is imported only when plotting).

:func:`plot_rd_curve` draws every curve it finds in the given trees: AIS curves
(``rate_distortion``), variational bounds (``variational``) and Echo channels
(``echo``, whose ``information`` is the exact rate), as the mean over examples with a
band of standard errors, rate against distortion, on axes that show every point
(:mod:`rdppl.plot.axes`), plus a panel of the BDMC gaps against ``beta*`` of a result
that has a ``bdmc`` group (:mod:`rdppl.plot.bdmc`). :func:`plot_diagnostics` draws the
importance-weight and kernel diagnostics of an AIS run against ``beta``, and
:func:`plot_bdmc_gap` the BDMC gap against the number of temperatures on log-log axes,
with error bars.

Every curve is drawn as a parametric curve in increasing ``beta``: the points are
sorted by ``beta`` first, so points are never joined out of order (a noisy
estimate may still make the curve turn back; its band is drawn whole).

The trainers of :mod:`rdppl.training` index their curves by ``rate_weight``, not by the
AIS inverse temperature ``beta``; these functions put such a curve on a ``beta`` axis
only through the explicit conversion :func:`rdppl.results.as_inverse_temperature`
(``beta = 1 / rate_weight``), and never treat one as the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from rdppl import results
from rdppl.plot.axes import (
    axis_scale,
    band_patch,
    labelled,
    mean_and_standard_error,
    on_beta_axis,
    pyplot,
    scale_note,
    set_scale,
    squashed,
    tidy_log_axis,
)
from rdppl.plot.bdmc import bdmc_gaps, draw_bdmc_panel, plot_bdmc_gap
from rdppl.results.labels import distortion_units

__all__ = [
    "CURVE_GROUPS",
    "plot_bdmc_gap",
    "plot_diagnostics",
    "plot_rd_curve",
    "tidy_log_axis",
]

# group name -> (rate variable, distortion variable, line style)
CURVE_GROUPS = {
    "rate_distortion": ("rate", "distortion", "-"),
    "variational": ("rate", "distortion", "--"),
    "echo": ("information", "distortion", ":"),
}

# sample_stats variables read by plot_diagnostics, each under any of its names:
# panel title -> (candidate variable names, y-axis label)
_DIAGNOSTICS = {
    "importance ESS": (
        ("importance_ess", "importance_effective_sample_size", "effective_sample_size"),
        "importance ESS (chains)",
    ),
    "Pareto k-hat": (("pareto_khat", "pareto_k", "khat"), "Pareto k-hat"),
    "acceptance rate": (("acceptance_rate",), "acceptance rate"),
    "step size": (("step_size",), "step size"),
}
PARETO_K_THRESHOLD = 0.7
_MARKER_LIMIT = 30  # curves with at most this many points get markers


def _curves(tree: xr.DataTree) -> list[tuple[str, xr.Dataset, str, str, str]]:
    found = []
    for group, (rate_name, distortion_name, style) in CURVE_GROUPS.items():
        if group in tree.children:
            dataset = on_beta_axis(tree[group].to_dataset())
            found.append((group, dataset, rate_name, distortion_name, style))
    return found


class _Curve(NamedTuple):
    label: str
    style: str
    beta: np.ndarray
    distortion: np.ndarray
    rate: np.ndarray
    rate_error: np.ndarray
    units: str | None


def _collect(
    pairs: list[tuple[str, xr.DataTree]],
) -> list[tuple[str, xr.DataTree, list[_Curve]]]:
    collected = []
    for name, tree in pairs:
        curves = []
        for group, dataset, rate_name, distortion_name, style in _curves(tree):
            for variable in (rate_name, distortion_name):
                if variable not in dataset.data_vars:
                    raise ValueError(
                        f"{name!r}: group {group!r} has no variable {variable!r} to "
                        f"plot (it has {', '.join(sorted(dataset.data_vars))})"
                    )
            rate, rate_error = mean_and_standard_error(dataset[rate_name])
            distortion, _ = mean_and_standard_error(dataset[distortion_name])
            finite = np.isfinite(rate) & np.isfinite(distortion)
            suffix = "" if group == "rate_distortion" else f" ({group})"
            beta = (
                dataset[results.BETA_DIM].values
                if results.BETA_DIM in dataset.dims
                else np.arange(rate.size)
            )
            curves.append(
                _Curve(
                    f"{name}{suffix}",
                    style,
                    np.asarray(beta, np.float64)[finite],
                    distortion[finite],
                    rate[finite],
                    np.nan_to_num(rate_error[finite]),
                    dataset[distortion_name].attrs.get("units")
                    or distortion_units(tree.attrs.get("distortion"))[0],
                )
            )
        collected.append((name, tree, curves))
    return collected


def plot_rd_curve(
    *trees: xr.DataTree | Mapping[str, xr.DataTree],
    labels: Sequence[str] | None = None,
    label: str | None = None,
    ax: Any = None,
    band: float | None = 2.0,
    bdmc: bool = True,
    log_distortion: bool | None = None,
    log_rate: bool = False,
) -> Any:
    """Plot rate against distortion for every curve group in ``trees``.

    Each curve is the mean over examples of the rate and of the distortion at each
    ``beta``, joined in increasing ``beta`` (a parametric curve: no zig-zags from
    noisy points joined out of order). Its band spans the mean rate plus or minus
    ``band`` standard errors over examples (standard deviation over examples,
    ``ddof=1``, divided by the square root of their number) at each ``beta``, drawn
    at the mean distortion and named in the legend; the distortion's own standard
    error is not drawn. There is no band with a single example. Every finite point
    is drawn: a logarithmic axis becomes ``symlog`` (linear near zero, stated in the
    axis label) where some values are zero or negative; negative distortions lie in
    its linear part (:func:`rdppl.plot.axes.axis_scale`).

    Parameters
    ----------
    *trees
        Result trees from :func:`rdppl.rd_curve` or the trainers of
        :mod:`rdppl.training`, or a single ``dict`` mapping labels to trees. A
        trainer's curve, indexed by ``rate_weight``, is converted with
        :func:`rdppl.results.as_inverse_temperature` and drawn in order of
        ``beta = 1 / rate_weight``.
    labels
        One label per tree (default: the tree's name, which survives
        :func:`rdppl.to_netcdf`, e.g. ``"rd_curve"`` or ``"beta_vae"``). Labels
        shared by several trees get `` [1]``, `` [2]``, ... appended. Curves other
        than AIS get their group in parentheses.
    label
        The label of a single tree (instead of ``labels``).
    ax
        Matplotlib axes to draw on (default: a new figure).
    band
        Half-width of the band in standard errors of the rate over examples (default
        2); ``None`` or ``0`` draws no band. On a log rate axis the band's lower
        edge is clipped at a tenth of the mean, on a ``symlog`` one at zero (or the
        lowest mean rate, if negative).
    bdmc
        Draw the BDMC gaps of trees with a ``bdmc`` group: a panel under the curve
        (appended to ``ax``) shows the mean gap (upper minus lower bound on
        ``log p(x)``, negative values as they are) at each ``beta*`` with error bars
        of 2 standard errors, and the curve's points at each ``beta*`` are marked.
        The bounds certify AIS on data simulated from the model at ``beta*`` (the
        group's own examples), not on the curve's data.
    log_distortion
        Logarithmic distortion (x) axis: ``log`` with plainly labelled ticks
        (:func:`tidy_log_axis`) where every distortion is positive, else ``symlog``.
        ``None`` (default) chooses one where a linear axis would squash a curve into
        an "L" (:func:`rdppl.plot.axes.squashed`: a huge distortion near
        ``beta = 0``), a linear axis otherwise.
    log_rate
        Logarithmic rate (y) axis, ``symlog`` where some rate is not positive (the
        rate at ``beta = 0`` is 0).

    Returns
    -------
    matplotlib.axes.Axes
        The axes of the curves (a BDMC panel is another axes of its figure).

    Raises
    ------
    ValueError
        If no tree holds a curve group, a curve group lacks its rate or distortion,
        or the labels do not match the trees.
    """
    collected = _collect(labelled(trees, labels, label))
    curves = [curve for _, _, found in collected for curve in found]
    if not curves:
        raise ValueError(
            f"no curve groups found; expected one of {sorted(CURVE_GROUPS)}"
        )
    gaps = [(name, bdmc_gaps(tree), found) for name, tree, found in collected]
    gaps = [entry for entry in gaps if bdmc and entry[1] is not None]
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5.8 if gaps else 4.0))
    all_distortion = np.concatenate([c.distortion for c in curves])
    all_rate = np.concatenate([c.rate for c in curves])
    if log_distortion is None:
        log_distortion = any(squashed(c.distortion, c.rate) for c in curves)
    x_scale = axis_scale(all_distortion) if log_distortion else ("linear", {})
    # a rate is a KL divergence: below zero only by noise, kept near the zero
    y_scale = (
        axis_scale(all_rate, linear_negatives=False) if log_rate else ("linear", {})
    )
    colours: dict[str, str] = {}
    banded = False
    for name, _, found in collected:
        for curve in found:
            (line,) = ax.plot(
                curve.distortion,
                curve.rate,
                curve.style,
                color=colours.get(name),
                marker="." if curve.rate.size <= _MARKER_LIMIT else None,
                markersize=4,
                label=curve.label,
            )
            colours.setdefault(name, line.get_color())
            if band and np.any(curve.rate_error > 0):
                half_width = band * curve.rate_error
                low = curve.rate - half_width
                if y_scale[0] == "log":  # the band's lower edge stays on a log axis
                    low = np.maximum(low, 0.1 * curve.rate)
                elif y_scale[0] == "symlog":  # no decades of negative rates
                    low = np.maximum(low, min(0.0, curve.rate.min()))
                patch = band_patch(
                    curve.distortion,
                    low,
                    curve.rate + half_width,
                    facecolor=line.get_color(),
                    alpha=0.2,
                    linewidth=0,
                    # one band in the legend stands for all
                    label=f"band: mean rate ± {band:g} s.e. over examples"
                    if not banded
                    else f"_{curve.label} band",
                )
                ax.add_patch(patch)
                banded = True
    entries = []
    for name, (betas, mean, error), found in gaps:
        entries.append((name, colours.get(name), betas, mean, error))
        if found:
            _mark_betas(ax, found[0], betas, colours.get(name), name)
    unit = {c.units for c in curves}
    unit_text = f"{unit.pop()} " if len(unit) == 1 and None not in unit else ""
    ax.set_xlabel(f"distortion ({unit_text}per example{scale_note(*x_scale)})")
    ax.set_ylabel(f"rate (nats per example{scale_note(*y_scale, wrap=True)})")
    set_scale(ax.xaxis, *x_scale)
    set_scale(ax.yaxis, *y_scale)
    ax.autoscale_view()
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    if entries:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        panel = make_axes_locatable(ax).append_axes("bottom", size="42%", pad=0.75)
        draw_bdmc_panel(panel, entries)
    return ax


def _mark_betas(
    ax: Any, curve: _Curve, betas: np.ndarray, colour: str | None, name: str
) -> None:
    """Mark the curve's points nearest each ``beta*`` of its BDMC panel."""
    inside = [
        b
        for b in betas
        if curve.beta.size and curve.beta.min() <= b <= curve.beta.max()
    ]
    if not inside:
        return
    index = [int(np.argmin(np.abs(curve.beta - b))) for b in inside]
    ax.plot(
        curve.distortion[index],
        curve.rate[index],
        "D",
        markerfacecolor="none",
        markeredgecolor=colour,
        markersize=7,
        linestyle="none",
        label=f"{name} at BDMC beta* (panel below)",
    )


def _find_variable(dataset: xr.Dataset, names: Sequence[str]) -> str | None:
    return next((name for name in names if name in dataset.data_vars), None)


def plot_diagnostics(tree: xr.DataTree, *, figure: Any = None) -> Any:
    """Plot the run's diagnostics against ``beta``, one panel each.

    Panels, for the variables the ``sample_stats`` group holds with some finite
    value (k-hat is NaN where too few chains allow no fit): the importance
    effective sample size of the weights (``importance_ess``, or
    ``effective_sample_size`` in older results; the number of chains as a dotted
    line), the Pareto k-hat of the log weights (``pareto_khat``; 0.7 as a dotted
    line), the acceptance rate (the kernel's target as a dotted line) and the step
    size. Each panel shows the median over examples and a band from the smallest to
    the largest example. ``beta = 0``, where no transition runs, is left out of the
    logarithmic ``beta`` axis.

    Parameters
    ----------
    tree
        A result of :func:`rdppl.rd_curve` (or any tree with a ``sample_stats``
        group over ``(example, beta)``).
    figure
        A matplotlib figure to draw on (default: a new one).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the tree has no ``sample_stats`` group or none of the variables.
    """
    if "sample_stats" not in tree.children:
        raise ValueError(
            f"plot_diagnostics needs a 'sample_stats' group; the tree has "
            f"{sorted(tree.children)}"
        )
    stats = tree["sample_stats"].to_dataset().sortby(results.BETA_DIM)
    stats = stats.sel({results.BETA_DIM: stats[results.BETA_DIM] > 0})
    panels = [
        (title, variable, ylabel)
        for title, (names, ylabel) in _DIAGNOSTICS.items()
        if (variable := _find_variable(stats, names)) is not None
        and np.isfinite(stats[variable].values).any()
    ]
    if not panels:
        raise ValueError(
            "sample_stats holds none of "
            f"{[n for names, _ in _DIAGNOSTICS.values() for n in names]}"
        )
    plt = pyplot()
    if figure is None:
        figure = plt.figure(figsize=(3.2 * len(panels), 3.0), layout="constrained")
    axes = figure.subplots(1, len(panels), sharex=True, squeeze=False)[0]
    beta = stats[results.BETA_DIM].values
    for ax, (title, variable, ylabel) in zip(axes, panels, strict=True):
        values = stats[variable].transpose(..., results.BETA_DIM)
        array = np.asarray(values.values, np.float64).reshape(-1, beta.size)
        with np.errstate(all="ignore"):
            finite = np.isfinite(array).any(axis=0)
            array = np.where(np.isfinite(array), array, np.nan)
            median = np.full(beta.size, np.nan)
            low, high = median.copy(), median.copy()
            median[finite] = np.nanmedian(array[:, finite], axis=0)
            low[finite] = np.nanmin(array[:, finite], axis=0)
            high[finite] = np.nanmax(array[:, finite], axis=0)
        (line,) = ax.plot(beta, median, label=f"{variable} (median)")
        if array.shape[0] > 1:
            ax.fill_between(
                beta, low, high, color=line.get_color(), alpha=0.2, linewidth=0
            )
        reference = _reference_level(tree, stats, title)
        if reference is not None:
            value, text = reference
            ax.axhline(value, color="grey", linestyle=":", linewidth=1, label=text)
        if variable == "step_size" and np.nanmin(low, initial=np.inf) > 0:
            ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_title(title, fontsize="medium")
        ax.set_ylabel(ylabel)
        ax.set_xlabel("beta")
        ax.grid(alpha=0.3)
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                tidy_log_axis(axis)
    return figure


def _reference_level(
    tree: xr.DataTree, stats: xr.Dataset, title: str
) -> tuple[float, str] | None:
    """The dotted reference line of a diagnostics panel, if any."""
    if title == "Pareto k-hat":
        return PARETO_K_THRESHOLD, f"k-hat = {PARETO_K_THRESHOLD}"
    if title == "acceptance rate" and "target_acceptance" in stats.attrs:
        return float(stats.attrs["target_acceptance"]), "target"
    if title == "importance ESS" and "num_chains" in tree.attrs:
        return float(tree.attrs["num_chains"]), "chains"
    return None
