"""Figures of rate-distortion results (matplotlib is imported only when plotting).

:func:`plot_rd_curve` draws every curve it finds in the given trees: AIS curves
(``rate_distortion``), variational bounds (``variational``) and Echo channels
(``echo``, whose ``information`` is the exact rate), averaged over examples, rate
against distortion. :func:`plot_bdmc_gap` draws BDMC gaps against the number of
temperatures.

The trainers of :mod:`rdppl.training` index their curves by ``rate_weight``, not by the
AIS inverse temperature ``beta``; these functions put such a curve on a ``beta`` axis
only through the explicit conversion :func:`rdppl.results.as_inverse_temperature`
(``beta = 1 / rate_weight``), and never treat one as the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from rdppl import results

__all__ = ["plot_rd_curve", "plot_bdmc_gap", "CURVE_GROUPS"]

# group name -> (rate variable, distortion variable, line style)
CURVE_GROUPS = {
    "rate_distortion": ("rate", "distortion", "-"),
    "variational": ("rate", "distortion", "--"),
    "echo": ("information", "distortion", ":"),
}


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
        return results.as_inverse_temperature(dataset)
    return dataset


def _curves(tree: xr.DataTree) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    found = []
    for group, (rate_name, distortion_name, style) in CURVE_GROUPS.items():
        if group in tree.children:
            dataset = _on_beta_axis(tree[group].to_dataset())
            rate = dataset[rate_name].mean("example").values
            distortion = dataset[distortion_name].mean("example").values
            found.append((group, rate, distortion, style))
    return found


def plot_rd_curve(
    *trees: xr.DataTree,
    labels: Sequence[str] | None = None,
    ax: Any = None,
    log_distortion: bool = False,
) -> Any:
    """Plot rate against distortion for every curve group in ``trees``.

    Parameters
    ----------
    *trees
        Result trees from :func:`rdppl.rd_curve` or the trainers of
        :mod:`rdppl.training`; a trainer's curve, indexed by ``rate_weight``, is
        converted with :func:`rdppl.results.as_inverse_temperature` and drawn in
        order of ``beta = 1 / rate_weight``.
    labels
        One label per tree (default: the tree's name, e.g. ``"beta_vae"`` for a
        trainer's result); curves other than AIS get their group in parentheses.
    ax
        Matplotlib axes to draw on (default: a new figure).
    log_distortion
        Use a logarithmic distortion axis.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if not trees:
        raise ValueError("plot_rd_curve needs at least one result tree")
    if labels is not None and len(labels) != len(trees):
        raise ValueError(
            f"labels must have one entry per tree ({len(trees)}), got {len(labels)}"
        )
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.0))
    drawn = 0
    for index, tree in enumerate(trees):
        label = labels[index] if labels is not None else (tree.name or f"run {index}")
        for group, rate, distortion, style in _curves(tree):
            suffix = "" if group == "rate_distortion" else f" ({group})"
            ax.plot(
                distortion,
                rate,
                style,
                marker=".",
                markersize=3,
                label=f"{label}{suffix}",
            )
            drawn += 1
    if drawn == 0:
        raise ValueError(
            f"no curve groups found; expected one of {sorted(CURVE_GROUPS)}"
        )
    ax.set_xlabel("distortion (nats)")
    ax.set_ylabel("rate (nats)")
    if log_distortion:
        ax.set_xscale("log")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_bdmc_gap(
    num_temperatures: Sequence[int],
    trees: Sequence[xr.DataTree],
    *,
    ax: Any = None,
) -> Any:
    """Plot the mean BDMC gap at each ``beta*`` against the number of temperatures.

    Parameters
    ----------
    num_temperatures
        The number of AIS temperatures of each tree's schedule.
    trees
        Results of :func:`rdppl.bdmc` (or of :func:`rdppl.rd_curve` with
        ``bdmc_betas``), one per entry of ``num_temperatures``.
    ax
        Matplotlib axes (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
    """
    if len(num_temperatures) != len(trees) or not trees:
        raise ValueError("give one BDMC result per number of temperatures")
    groups = [_on_beta_axis(tree["bdmc"].to_dataset()) for tree in trees]
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.0))
    gaps = np.stack([group["gap"].mean("example").values for group in groups])
    betas = groups[0]["beta"].values
    for column, beta in enumerate(betas):
        ax.plot(
            num_temperatures, gaps[:, column], marker="o", label=f"beta* = {beta:g}"
        )
    ax.set_xscale("log")
    ax.set_xlabel("AIS temperatures")
    ax.set_ylabel("BDMC gap (nats)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax
