"""Figures of rate-distortion results (matplotlib is imported only when plotting).

:func:`plot_rd_curve` draws every curve it finds in the given trees: AIS curves
(``rate_distortion``), variational bounds (``variational``) and Echo channels
(``echo``, whose ``information`` is the exact rate), as the mean over examples with a
band of standard errors, rate against distortion, plus the BDMC bounds of a result
that has a ``bdmc`` group. :func:`plot_diagnostics` draws the importance-weight and
kernel diagnostics of an AIS run against ``beta``, and :func:`plot_bdmc_gap` the BDMC
gap against the number of temperatures on log-log axes, with error bars.

Every curve is drawn as a parametric curve in increasing ``beta``: the points are
sorted by ``beta`` first, so noisy estimates never zig-zag back and forth.

The trainers of :mod:`rdppl.training` index their curves by ``rate_weight``, not by the
AIS inverse temperature ``beta``; these functions put such a curve on a ``beta`` axis
only through the explicit conversion :func:`rdppl.results.as_inverse_temperature`
(``beta = 1 / rate_weight``), and never treat one as the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from rdppl import results

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


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting needs matplotlib: pip install 'rdppl[plot]'"
        ) from error
    return plt


def _on_beta_axis(dataset: xr.Dataset) -> xr.Dataset:
    """A curve indexed by ``beta``: a trainer's ``rate_weight`` curve is converted."""
    if results.RATE_WEIGHT_DIM in dataset.dims:
        dataset = results.as_inverse_temperature(dataset)
    if results.BETA_DIM in dataset.dims:
        dataset = dataset.sortby(results.BETA_DIM)
    return dataset


def _mean_and_standard_error(array: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over ``example`` and its standard error (zero with a single example)."""
    if results.EXAMPLE_DIM not in array.dims:
        values = np.asarray(array.values, np.float64)
        return values, np.zeros_like(values)
    count = array.sizes[results.EXAMPLE_DIM]
    mean = np.asarray(array.mean(results.EXAMPLE_DIM).values, np.float64)
    if count < 2:
        return mean, np.zeros_like(mean)
    spread = array.std(results.EXAMPLE_DIM, ddof=1).values
    return mean, np.asarray(spread, np.float64) / np.sqrt(count)


def _unique_labels(labels: Sequence[str]) -> list[str]:
    """Labels shared by several results get `` [1]``, `` [2]``, ... appended."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        if counts[label] == 1:
            unique.append(label)
            continue
        seen[label] = seen.get(label, 0) + 1
        unique.append(f"{label} [{seen[label]}]")
    return unique


def _labelled(
    trees: tuple[Any, ...],
    labels: Sequence[str] | None,
    label: str | None,
) -> list[tuple[str, xr.DataTree]]:
    """Pair each tree with a distinct label."""
    single = trees[0] if len(trees) == 1 else None
    if isinstance(single, Mapping) and not isinstance(single, xr.DataTree | xr.Dataset):
        if labels is not None or label is not None:
            raise ValueError("give labels either as the keys of a dict or as labels=")
        pairs = [(str(key), tree) for key, tree in trees[0].items()]
    else:
        if label is not None:
            if labels is not None or len(trees) != 1:
                raise ValueError("label= names a single tree; use labels= for several")
            labels = [label]
        if labels is not None and len(labels) != len(trees):
            raise ValueError(
                f"labels must have one entry per tree ({len(trees)}), got {len(labels)}"
            )
        names = (
            list(labels)
            if labels is not None
            else [
                getattr(tree, "name", None) or f"run {i}"
                for i, tree in enumerate(trees)
            ]
        )
        pairs = list(zip(names, trees, strict=True))
    if not pairs:
        raise ValueError("plot_rd_curve needs at least one result tree")
    for name, tree in pairs:
        if not isinstance(tree, xr.DataTree):
            raise TypeError(
                f"expected an xarray.DataTree for {name!r}, got {type(tree).__name__}"
            )
    unique = _unique_labels([name for name, _ in pairs])
    return list(zip(unique, [tree for _, tree in pairs], strict=True))


def _plain_number(value: float, _position: Any = None) -> str:
    return f"{value:g}"


def tidy_log_axis(axis: Any) -> None:
    """Give a logarithmic axis few, plainly written tick labels.

    Major ticks fall at ``1, 2, 5 x 10^k`` on an axis spanning less than three
    decades (at a few evenly spaced values below 0.7 decades) and at powers of ten
    otherwise; minor ticks are unlabelled. This replaces
    matplotlib's labelled minor ticks (``1.8x10^0 2x10^0 2.2x10^0``) on short ranges.

    Parameters
    ----------
    axis
        A matplotlib ``Axis`` on a log scale (``ax.xaxis`` or ``ax.yaxis``).
    """
    from matplotlib import ticker

    limits = axis.axes.get_xlim() if axis.axis_name == "x" else axis.axes.get_ylim()
    low, high = sorted(limits)
    decades = np.log10(high / low) if low > 0 and high > 0 else np.inf
    if decades < 0.7:  # too short for 1, 2, 5: a few evenly spaced plain labels
        axis.set_major_locator(ticker.MaxNLocator(nbins=4))
        axis.set_major_formatter(ticker.FuncFormatter(_plain_number))
    elif decades < 3:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FuncFormatter(_plain_number))
    else:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0,)))
        axis.set_major_formatter(ticker.LogFormatterSciNotation())
    axis.set_minor_locator(ticker.LogLocator(base=10, subs=np.arange(2, 10) * 1.0))
    axis.set_minor_formatter(ticker.NullFormatter())


def _curves(tree: xr.DataTree) -> list[tuple[str, xr.Dataset, str, str, str]]:
    found = []
    for group, (rate_name, distortion_name, style) in CURVE_GROUPS.items():
        if group in tree.children:
            dataset = _on_beta_axis(tree[group].to_dataset())
            found.append((group, dataset, rate_name, distortion_name, style))
    return found


def _bdmc_rates(tree: xr.DataTree) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean distortion and the rate interval certified by BDMC at each ``beta*``."""
    if "bdmc" not in tree.children:
        return None
    bounds = _on_beta_axis(tree["bdmc"].to_dataset())
    if not {"lower", "upper", "distortion"} <= set(bounds.data_vars):
        return None
    beta = bounds[results.BETA_DIM]
    # R = -log Z - beta D: an upper bound on log Z gives the lowest rate
    low = (-bounds["upper"] - beta * bounds["distortion"]).mean(results.EXAMPLE_DIM)
    high = (-bounds["lower"] - beta * bounds["distortion"]).mean(results.EXAMPLE_DIM)
    distortion = bounds["distortion"].mean(results.EXAMPLE_DIM)
    return distortion.values, low.values, high.values


def plot_rd_curve(
    *trees: xr.DataTree | Mapping[str, xr.DataTree],
    labels: Sequence[str] | None = None,
    label: str | None = None,
    ax: Any = None,
    band: float | None = 2.0,
    bdmc: bool = True,
    log_distortion: bool = False,
    log_rate: bool = False,
) -> Any:
    """Plot rate against distortion for every curve group in ``trees``.

    Each curve is the mean over examples of the rate and of the distortion at each
    ``beta``, joined in increasing ``beta`` (a parametric curve: no zig-zags from
    noisy points joined out of order). Its band spans the mean rate plus or minus
    ``band`` standard errors over examples (standard deviation over examples,
    ``ddof=1``, divided by the square root of their number) at each ``beta``, drawn
    at the mean distortion; the distortion's own standard error is not drawn. There
    is no band with a single example.

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
        edge is clipped at a tenth of the mean.
    bdmc
        Draw the BDMC bounds of a tree with a ``bdmc`` group: at each ``beta*``, a
        vertical bar at the mean forward distortion spanning the mean rate between
        ``-upper - beta* D`` and ``-lower - beta* D``. They certify AIS on data
        simulated from the model at ``beta*`` (the group's own examples), not on the
        curve's data.
    log_distortion, log_rate
        Logarithmic distortion (x) or rate (y) axis, with plainly labelled ticks
        (:func:`tidy_log_axis`).

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If no tree holds a curve group, or the labels do not match the trees.
    """
    pairs = _labelled(trees, labels, label)
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.0))
    drawn = 0
    for name, tree in pairs:
        color = None
        for group, dataset, rate_name, distortion_name, style in _curves(tree):
            rate, rate_error = _mean_and_standard_error(dataset[rate_name])
            distortion, distortion_error = _mean_and_standard_error(
                dataset[distortion_name]
            )
            finite = np.isfinite(rate) & np.isfinite(distortion)
            if log_distortion:
                finite &= distortion > 0
            if log_rate:
                finite &= rate > 0
            suffix = "" if group == "rate_distortion" else f" ({group})"
            (line,) = ax.plot(
                distortion[finite],
                rate[finite],
                style,
                color=color,
                marker="." if finite.sum() <= _MARKER_LIMIT else None,
                markersize=4,
                label=f"{name}{suffix}",
            )
            color = line.get_color()
            drawn += 1
            if band and np.any(rate_error[finite] > 0):
                half_width = band * np.nan_to_num(rate_error[finite])
                low = rate[finite] - half_width
                if log_rate:  # the band's lower edge stays on a log axis
                    low = np.maximum(low, 0.1 * rate[finite])
                ax.fill_between(
                    distortion[finite],
                    low,
                    rate[finite] + half_width,
                    color=color,
                    alpha=0.2,
                    linewidth=0,
                    label=f"_{name}{suffix} band",
                )
        bounds = _bdmc_rates(tree) if bdmc else None
        if bounds is not None:
            distortion, low, high = bounds
            ax.errorbar(
                distortion,
                (low + high) / 2,
                yerr=(high - low) / 2,
                fmt="none",
                ecolor=color,
                elinewidth=1.5,
                capsize=3,
                label=f"{name}: BDMC bounds",
            )
    if drawn == 0:
        raise ValueError(
            f"no curve groups found; expected one of {sorted(CURVE_GROUPS)}"
        )
    ax.autoscale_view()
    ax.set_xlabel("distortion (nats)")
    ax.set_ylabel("rate (nats)")
    if log_distortion:
        ax.set_xscale("log")
        tidy_log_axis(ax.xaxis)
    if log_rate:
        ax.set_yscale("log")
        tidy_log_axis(ax.yaxis)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


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
    plt = _pyplot()
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
    groups = [_on_beta_axis(trees[i]["bdmc"].to_dataset()) for i in order]
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.0))
    statistics = [_mean_and_standard_error(group["gap"]) for group in groups]
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
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(_plain_number))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    if yscale == "log":
        tidy_log_axis(ax.yaxis)
    ax.set_xlabel("AIS temperatures")
    ax.set_ylabel("BDMC gap (nats)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, which="both")
    return ax
