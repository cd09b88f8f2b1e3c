"""Axes of the figures of :mod:`rdppl.plot`: scales, ticks, labels, shared helpers.

A distortion axis never drops data: it is linear, logarithmic where every value is
positive, or symmetric-logarithmic (``symlog``, linear near zero and stated in the
axis label) where some are zero or negative, as Gaussian negative log likelihoods
often are. :func:`squashed` decides when a linear axis would squash a curve into an
"L" (a huge distortion at ``beta`` near 0 beside the curve that matters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from rdppl import results

__all__ = ["axis_scale", "band_patch", "squashed", "tidy_log_axis"]

SQUASH_RATIO = 10.0
"""A linear axis squashes a curve whose distortion spans more than this many times
the span of its upper three quarters in rate."""


def pyplot() -> Any:
    """``matplotlib.pyplot``, or an ImportError saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting needs matplotlib: pip install 'rdppl[plot]'"
        ) from error
    return plt


def on_beta_axis(dataset: xr.Dataset) -> xr.Dataset:
    """A curve indexed by ``beta``: a trainer's ``rate_weight`` curve is converted."""
    if results.RATE_WEIGHT_DIM in dataset.dims:
        dataset = results.as_inverse_temperature(dataset)
    if results.BETA_DIM in dataset.dims:
        dataset = dataset.sortby(results.BETA_DIM)
    return dataset


def mean_and_standard_error(array: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
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


def plain_number(value: float, _position: Any = None) -> str:
    """A tick label written plainly (``%g``)."""
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
        axis.set_major_formatter(ticker.FuncFormatter(plain_number))
    elif decades < 3:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FuncFormatter(plain_number))
    else:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0,)))
        axis.set_major_formatter(ticker.LogFormatterSciNotation())
    axis.set_minor_locator(ticker.LogLocator(base=10, subs=np.arange(2, 10) * 1.0))
    axis.set_minor_formatter(ticker.NullFormatter())


def band_patch(x: np.ndarray, low: np.ndarray, high: np.ndarray, **style: Any) -> Any:
    """A band between ``low`` and ``high`` along a curve whose ``x`` may turn back.

    ``fill_between`` fills one polygon that crosses itself where a noisy
    parametric curve turns back in ``x``, leaving holes. Here each segment of the
    curve is a quadrilateral, all wound the same way in one path, so the
    non-zero fill rule paints their union once: no holes, no darker overlaps.

    Parameters
    ----------
    x, low, high
        The curve's abscissae and the band's lower and upper edges, point by point.
    **style
        Keyword arguments of ``matplotlib.patches.PathPatch`` (colour, alpha,
        label).

    Returns
    -------
    matplotlib.patches.PathPatch
        To add with ``ax.add_patch``.
    """
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path

    x, low, high = (np.asarray(a, np.float64) for a in (x, low, high))
    left = np.arange(max(x.size - 1, 0))
    turn = x[left + 1] < x[left]  # wind every quadrilateral counter-clockwise
    first, second = np.where(turn, left + 1, left), np.where(turn, left, left + 1)
    corners = np.stack(
        [
            np.stack([x[first], low[first]], axis=-1),
            np.stack([x[second], low[second]], axis=-1),
            np.stack([x[second], high[second]], axis=-1),
            np.stack([x[first], high[first]], axis=-1),
            np.stack([x[first], low[first]], axis=-1),
        ],
        axis=1,
    )
    codes = np.tile(
        [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY],
        left.size,
    )
    return PathPatch(Path(corners.reshape(-1, 2), codes), **style)


def squashed(distortion: np.ndarray, rate: np.ndarray) -> bool:
    """Whether a linear distortion axis would squash this curve into an "L".

    True when the distortion spans more than :data:`SQUASH_RATIO` times the span of
    the points in the upper three quarters of the rate range: the curve that matters
    would be a sliver beside the distortion near ``beta = 0``.
    """
    finite = np.isfinite(distortion) & np.isfinite(rate)
    distortion, rate = distortion[finite], rate[finite]
    if distortion.size < 3 or np.ptp(rate) == 0:
        return False
    upper = rate >= rate.min() + 0.25 * np.ptp(rate)
    return bool(np.ptp(distortion) > SQUASH_RATIO * np.ptp(distortion[upper]))


def axis_scale(
    values: np.ndarray, *, linear_negatives: bool = True
) -> tuple[str, dict[str, float]]:
    """A logarithmic scale that shows every value: ``log`` or ``symlog``.

    ``log`` where every finite value is positive; otherwise ``symlog``, linear
    within ``+/- linthresh``. With ``linear_negatives`` (distortions: Gaussian
    negative log likelihoods below zero are data), negative values lie in the
    linear part, so the curve is not bent around an arbitrary zero: ``linthresh``
    is the smallest ``1, 2, 5 x 10^k`` at or above the largest negative magnitude.
    Otherwise (a rate of 0 at ``beta = 0``, or below 0 only by noise) it is a power
    of ten three decades below the largest magnitude (at least the smallest nonzero
    magnitude's power of ten).

    Parameters
    ----------
    values
        The values the axis shows.
    linear_negatives
        Whether negative values are data to show in the linear part.

    Returns
    -------
    tuple
        The scale's name and its keyword arguments for ``set_xscale``.
    """
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0 or np.all(values > 0):
        return "log", {}
    magnitude = np.abs(values)
    largest = magnitude.max()
    if largest == 0:
        return "symlog", {"linthresh": 1.0}
    if linear_negatives and np.any(values < 0):
        return "symlog", {"linthresh": nice_ceiling(-values.min()), "linscale": 1.0}
    exponent = np.floor(np.log10(largest)) - 3
    nonzero = magnitude[magnitude > 0]
    exponent = max(exponent, np.floor(np.log10(nonzero.min())))
    return "symlog", {"linthresh": float(10.0**exponent), "linscale": 0.5}


def nice_ceiling(value: float) -> float:
    """The smallest ``1, 2, 5 x 10^k`` at or above a positive ``value``."""
    power = 10.0 ** np.floor(np.log10(value))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= value))


def scale_note(scale: str, options: dict[str, float], *, wrap: bool = False) -> str:
    """The words an axis label adds for its scale (empty for linear and log)."""
    if scale != "symlog":
        return ""
    return f";{chr(10) if wrap else ' '}symlog, linear within ±{options['linthresh']:g}"


def set_scale(axis: Any, scale: str, options: dict[str, float]) -> None:
    """Put ``axis`` on ``scale`` with plainly labelled ticks."""
    from matplotlib import ticker

    if scale == "linear":
        return
    if axis.axis_name == "x":
        axis.axes.set_xscale(scale, **options)
    else:
        axis.axes.set_yscale(scale, **options)
    if scale == "log":
        tidy_log_axis(axis)
    else:
        axis.set_major_locator(symlog_locator(**options))
        axis.set_major_formatter(ticker.FuncFormatter(plain_number))
        axis.set_minor_locator(ticker.NullLocator())
        axis.set_minor_formatter(ticker.NullFormatter())


def symlog_locator(linthresh: float, linscale: float = 1.0) -> Any:
    """Ticks of a ``symlog`` axis: evenly spaced where linear, decades beyond.

    Matplotlib's own locator puts ticks only at ``0`` and ``+/- linthresh x 10^k``,
    none inside a wide linear part (where negative log likelihoods lie). Here a
    linear part at least one decade wide (``linscale >= 1``) gets about four evenly
    spaced ticks, a narrow one only ``0``; beyond ``linthresh``, ticks fall at
    powers of ten (and at ``2, 5 x 10^k`` where that part spans under a decade).
    """
    from matplotlib import ticker

    class SymlogTicks(ticker.Locator):
        def __call__(self) -> Any:
            return self.tick_values(*self.axis.get_view_interval())

        def tick_values(self, vmin: float, vmax: float) -> Any:
            low, high = sorted((vmin, vmax))
            ticks = [0.0] if low <= 0 <= high else []
            inner = max(low, -linthresh), min(high, linthresh)
            if linscale >= 1 and inner[0] < inner[1]:
                even = ticker.MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10])
                ticks += [
                    t for t in even.tick_values(*inner) if inner[0] <= t <= inner[1]
                ]
            for sign, end in ((1.0, high), (-1.0, -low)):
                if end <= linthresh:
                    continue
                decades = np.log10(end / linthresh)
                mantissas = (1.0, 2.0, 5.0) if decades < 1 else (1.0,)
                powers = 10.0 ** np.arange(
                    np.floor(np.log10(linthresh)), np.ceil(np.log10(end)) + 1
                )
                ticks += [
                    sign * m * power
                    for power in powers
                    for m in mantissas
                    if linthresh <= m * power <= end
                ]
            return self.raise_if_exceeds(np.unique(np.asarray(ticks, np.float64)))

    return SymlogTicks()


def unique_labels(labels: Sequence[str]) -> list[str]:
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


def labelled(
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
    unique = unique_labels([name for name, _ in pairs])
    return list(zip(unique, [tree for _, tree in pairs], strict=True))
