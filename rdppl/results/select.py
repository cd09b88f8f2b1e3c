"""One example at one temperature of a result: what ArviZ's plots draw best."""

from __future__ import annotations

import math
import operator

import numpy as np
import xarray as xr

from rdppl.results.core import BETA_DIM, EXAMPLE_DIM

__all__ = ["posterior_at"]

# groups kept, in this order; the others (BDMC's simulated examples, ...) index
# other examples or temperatures
_GROUPS = (
    "posterior",
    "weighted_posterior",
    "observed_data",
    "rate_distortion",
    "sample_stats",
)


def posterior_at(result: xr.DataTree, *, example: int, beta: float) -> xr.DataTree:
    """The posterior draws of one example at one temperature, for ArviZ.

    ArviZ plots one panel per variable and per value of every dimension that is not
    a sample dimension; a result's ``posterior`` has ``example`` and ``beta`` too.
    This selects one of each in every group that has them, so that ``az.plot_*``
    draws one panel per latent coordinate.

    Parameters
    ----------
    result
        A result of :func:`rdppl.rd_curve` run with ``posterior_betas=``, as returned
        or read back with :func:`rdppl.from_netcdf`.
    example
        The example: a value of the ``example`` coordinate (``0`` to ``N - 1``).
    beta
        The temperature: the nearest of the ``posterior`` group's temperatures (the
        run's ``posterior_betas``) is taken; it must lie between the smallest and
        the largest of them.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (dims ``chain``, ``draw`` and the sites' own),
        ``weighted_posterior``, ``observed_data``, ``rate_distortion`` and
        ``sample_stats`` where the result has them, each at that example and
        temperature (scalar coordinates ``example`` and ``beta`` say which); the
        root keeps the result's attributes.

    Raises
    ------
    ValueError
        If the result has no ``posterior`` group, or ``example`` or ``beta`` is not
        one of its examples or within its temperatures.

    Examples
    --------
    >>> one = rdppl.posterior_at(result, example=0, beta=1.0)  # doctest: +SKIP
    >>> az.plot_trace_dist(one, var_names=["z"])  # doctest: +SKIP
    """
    if not isinstance(result, xr.DataTree):
        raise TypeError(f"expected an xarray.DataTree, got {type(result).__name__}")
    if "posterior" not in result.children:
        raise ValueError(
            "result has no posterior group: run rdppl.rd_curve with "
            "posterior_betas=[...] to keep posterior draws"
        )
    posterior = result["posterior"]
    examples = posterior[EXAMPLE_DIM].values
    if isinstance(example, bool | np.bool_):
        index = None
    else:
        try:
            index = operator.index(example)
        except TypeError:
            index = None
    if index is None or index not in examples:
        raise ValueError(
            f"example must be an integer among the result's examples "
            f"({_describe(examples)}), got {example!r}"
        )
    betas = posterior[BETA_DIM].values
    try:
        value = float(beta)
    except (TypeError, ValueError):
        value = math.nan
    tolerance = 1e-9 * max(1.0, float(np.max(np.abs(betas))))
    if not (betas.min() - tolerance <= value <= betas.max() + tolerance):
        raise ValueError(
            f"beta must lie within the posterior's temperatures "
            f"{betas.tolist()} (the run's posterior_betas), got {beta!r}"
        )
    chosen = betas[np.argmin(np.abs(betas - value))]
    groups = {}
    for name in _GROUPS:
        if name not in result.children:
            continue
        dataset = result[name].to_dataset(inherit=False)
        if EXAMPLE_DIM in dataset.dims:
            dataset = dataset.sel({EXAMPLE_DIM: index})
        if BETA_DIM in dataset.dims:
            if chosen not in dataset[BETA_DIM].values:
                continue  # another grid of temperatures
            dataset = dataset.sel({BETA_DIM: chosen})
        groups[f"/{name}"] = dataset
    tree = xr.DataTree.from_dict(groups, name=result.name)
    tree.attrs = dict(result.attrs)
    return tree


def _describe(values: np.ndarray) -> str:
    values = np.asarray(values)
    if values.size and np.array_equal(values, np.arange(values.size)):
        return f"0 to {values.size - 1}"
    return str(values.tolist())
