"""The summary printed by ``rdppl info``: a header, then the curve's table.

The header describes the file; the table is ``rdppl.summary`` (or a plain table of
the curve at a few temperatures), followed by notes explaining NaN diagnostics.

Imports stay light (no JAX), so that ``rdppl info`` starts fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KHAT_MIN_CHAINS_FOR_FIT", "khat_note", "summarise"]

KHAT_MIN_CHAINS_FOR_FIT = 30
"""Fewest chains with a Pareto k-hat: the fit needs 6 tail weights and uses
``rdppl.diagnostics.khat_tail_length(M) = M // 5`` of ``M`` chains (NaN below)."""


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
    note = khat_note(tree)
    if note is not None:
        lines.append(note)
    return "\n".join(lines)


def khat_note(tree: Any) -> str | None:
    """Why the Pareto k-hat of a result is NaN everywhere, or None if it is not.

    Parameters
    ----------
    tree
        A result tree.

    Returns
    -------
    str or None
        One line: too few chains (fewer than :data:`KHAT_MIN_CHAINS_FOR_FIT`), or no
        finite weight and no spread among the largest weights.
    """
    import numpy as np

    values = [
        np.asarray(tree[group][name].values, np.float64)
        for group in ("sample_stats", "log_marginal_likelihood")
        if group in tree.children
        for name in ("pareto_khat",)
        if name in tree[group].data_vars
    ]
    if not values or any(np.isfinite(v).any() for v in values):
        return None
    attrs = tree.attrs
    chains = attrs.get("num_chains", attrs.get("num_samples"))
    if "sample_stats" not in tree.children:  # log p(x) by importance sampling
        chains = attrs.get("num_samples", chains)
    if chains is not None and int(chains) < KHAT_MIN_CHAINS_FOR_FIT:
        return (
            f"pareto_khat_max is nan: k-hat needs at least {KHAT_MIN_CHAINS_FOR_FIT} "
            f"chains (the Pareto fit uses the largest fifth of the weights, at least "
            f"6); this run has {int(chains)}"
        )
    return (
        "pareto_khat_max is nan: no finite k-hat (no finite importance weight, or "
        "the largest weights all equal, e.g. after resampling)"
    )


def _library_summary(tree: Any) -> str | None:
    """``str(rdppl.summary(tree))``, or None where it does not apply."""
    import warnings

    from rdppl.results.summary import summary

    if "rate_distortion" not in tree.children:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(summary(tree))
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
