"""``rdppl.summary``: a result at a glance, as a printable table.

The numbers are means over examples with their standard errors, Monte Carlo
standard errors from the chains (docs/math.md §2.5), and the weight and kernel
diagnostics at a few temperatures: what NumPyro's ``print_summary()`` is to MCMC.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["Summary", "summary"]

DEFAULT_NUM_BETAS = 5


class Summary:
    """Tables of a result's estimates, one ``xarray.Dataset`` per section.

    ``print(summary)`` shows them as text; ``summary["rate_distortion"]`` (or
    ``summary.sections``) gives the datasets.

    Parameters
    ----------
    sections
        Section name to a dataset whose variables are the columns, over at most one
        dimension (the rows).
    title
        The first line of the text.
    """

    def __init__(self, sections: Mapping[str, xr.Dataset], *, title: str) -> None:
        self.sections = dict(sections)
        self.title = title

    def __getitem__(self, name: str) -> xr.Dataset:
        return self.sections[name]

    def __iter__(self):
        return iter(self.sections)

    def __str__(self) -> str:
        parts = [self.title]
        for name, table in self.sections.items():
            parts.append("")
            parts.append(name)
            parts.append(_format_table(table))
        return "\n".join(parts)

    def __repr__(self) -> str:
        return str(self)


def _format_value(value: Any) -> str:
    value = float(value)
    if math.isnan(value):
        return "nan"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _format_table(table: xr.Dataset) -> str:
    names = list(table.data_vars)
    dims = list(table.dims)
    if dims:
        (dim,) = dims
        index = [_format_value(v) for v in table[dim].values]
        header = [dim, *names]
        rows = [
            [index[i], *(_format_value(table[n].values[i]) for n in names)]
            for i in range(table.sizes[dim])
        ]
    else:
        header = names
        rows = [[_format_value(table[n].values) for n in names]]
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += [
        "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows
    ]
    return "\n".join("  " + line for line in lines)


def _mean_and_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over examples (axis 0) and its standard error (NaN with one example)."""
    count = values.shape[0]
    mean = np.mean(values, axis=0)
    if count < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, np.std(values, axis=0, ddof=1) / np.sqrt(count)


def _nan_reduce(function: Any, values: Any) -> np.ndarray:
    """``function`` over examples (axis 0) ignoring NaN; all NaN gives NaN."""
    with warnings.catch_warnings():  # an all-NaN column (no transition at beta_0)
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(np.asarray(values, np.float64), axis=0)


def _combined(errors: np.ndarray) -> np.ndarray:
    """Standard error of a mean over examples from per-example errors (axis 0)."""
    return np.sqrt(np.sum(np.square(errors), axis=0)) / errors.shape[0]


def log_z_mcse(importance_ess: Any, num_chains: int) -> np.ndarray:
    """Monte Carlo standard error of ``log Zhat`` from the importance ESS.

    The delta method: ``Var[Zhat] / Z^2 ~ (M / ESS - 1) / M`` for ``M`` chains
    (docs/math.md §2.5); a first-order estimate, too small when k-hat is large.
    """
    ess = np.asarray(importance_ess, np.float64)
    return np.sqrt(np.maximum(num_chains / ess - 1.0, 0.0) / num_chains)


def _choose(betas: np.ndarray, requested: Sequence[float] | None, count: int) -> Any:
    """Indices of the rows: the nearest to ``requested``, or spread along the path."""
    if requested is not None:
        wanted = np.atleast_1d(np.asarray(requested, np.float64))
        index = [int(np.argmin(np.abs(betas - b))) for b in wanted]
    else:
        index = [int(round(i)) for i in np.linspace(0, len(betas) - 1, count + 1)[1:]]
        ones = np.flatnonzero(betas == 1.0)
        index += [int(i) for i in ones]
    return sorted(set(index))


def _curve_section(result: xr.DataTree, index: list[int], chains: int) -> xr.Dataset:
    curve = result["rate_distortion"].to_dataset().isel(beta=index)
    columns: dict[str, Any] = {}
    for name in ("rate", "distortion", "log_z"):
        mean, se = _mean_and_se(curve[name].values)
        columns[name] = mean
        columns[f"{name}_se"] = se
    if "sample_stats" in result.children:
        stats = result["sample_stats"].to_dataset().isel(beta=index)
        ess = stats["importance_ess"].values
        columns["log_z_mcse"] = _combined(log_z_mcse(ess, chains))
        distortion_error = np.sqrt(stats["distortion_variance"].values / ess)
        columns["distortion_mcse"] = _combined(distortion_error)
        columns["pareto_khat_max"] = _nan_reduce(np.nanmax, stats["pareto_khat"])
        columns["importance_ess_min"] = np.min(ess, axis=0)
        columns["acceptance_rate"] = _nan_reduce(np.nanmean, stats["acceptance_rate"])
    betas = curve["beta"].values
    return xr.Dataset(
        {name: ("beta", np.asarray(v, np.float64)) for name, v in columns.items()},
        coords={"beta": betas},
    )


def _bdmc_section(result: xr.DataTree) -> xr.Dataset:
    bdmc = result["bdmc"].to_dataset()
    columns = {}
    for name in ("lower", "upper", "gap"):
        mean, se = _mean_and_se(bdmc[name].values)
        columns[name] = mean
        columns[f"{name}_se"] = se
    return xr.Dataset(
        {name: ("beta", v) for name, v in columns.items()},
        coords={"beta": bdmc["beta"].values},
    )


def _likelihood_section(result: xr.DataTree, chains: int) -> xr.Dataset:
    group = result["log_marginal_likelihood"].to_dataset()
    estimate = group["log_marginal_likelihood"].values
    ess = group["importance_ess"].values
    samples = int(group.attrs.get("num_samples", result.attrs.get("num_samples", 0)))
    samples = samples or chains
    mean, se = _mean_and_se(estimate[:, None])
    columns = {
        "log_marginal_likelihood": mean[0],
        "log_marginal_likelihood_se": se[0],
        "log_marginal_likelihood_mcse": _combined(log_z_mcse(ess, samples)),
        "importance_ess_min": np.min(ess),
    }
    if "pareto_khat" in group:
        columns["pareto_khat_max"] = _nan_reduce(np.nanmax, group["pareto_khat"])
    return xr.Dataset({name: ((), np.float64(v)) for name, v in columns.items()})


def summary(
    result: xr.DataTree,
    *,
    betas: Sequence[float] | None = None,
    num_betas: int = DEFAULT_NUM_BETAS,
) -> Summary:
    """Means over examples, standard errors and diagnostics of a result.

    Parameters
    ----------
    result
        A tree from :func:`rdppl.rd_curve`, :func:`rdppl.bdmc` or
        :func:`rdppl.log_likelihood` (or read back from a file).
    betas
        Temperatures of the ``rate_distortion`` rows (the nearest of the schedule
        are shown). Default: ``num_betas`` spread along the schedule, and 1 when
        the schedule has it.
    num_betas
        Number of default rows.

    Returns
    -------
    Summary
        Sections ``rate_distortion`` (``rate``, ``distortion``, ``log_z``: mean
        over examples, ``*_se`` its standard error over examples, ``*_mcse`` the
        part of it due to the chains; ``pareto_khat_max`` and
        ``importance_ess_min`` over examples; mean ``acceptance_rate``), ``bdmc``
        (``lower``, ``upper``, ``gap`` with their standard errors) and
        ``log_marginal_likelihood``, for the groups the result has.

    Raises
    ------
    ValueError
        When the result has none of those groups.
    """
    chains = int(result.attrs.get("num_chains", 1))
    sections: dict[str, xr.Dataset] = {}
    children = result.children
    if "rate_distortion" in children:
        grid = np.asarray(result["rate_distortion"]["beta"].values, np.float64)
        index = _choose(grid, betas, max(1, int(num_betas)))
        sections["rate_distortion"] = _curve_section(result, index, chains)
    if "bdmc" in children:
        sections["bdmc"] = _bdmc_section(result)
    if "log_marginal_likelihood" in children:
        sections["log_marginal_likelihood"] = _likelihood_section(result, chains)
    if not sections:
        raise ValueError(
            "summary needs a result of rd_curve, bdmc or log_likelihood (a group "
            f"rate_distortion, bdmc or log_marginal_likelihood); got groups "
            f"{sorted(children)}"
        )
    name = result.name or "result"
    examples = next(iter(children.values())).sizes.get("example")
    facts = [f"{chains} chains"]
    if examples is not None:
        facts.insert(0, f"{examples} examples")
    if "num_temperatures" in result.attrs:
        facts.append(f"{int(result.attrs['num_temperatures'])} temperatures")
    title = (
        f"{name}: {', '.join(facts)}; means over examples, *_se their standard "
        "errors, *_mcse the chains' part"
    )
    return Summary(sections, title=title)
