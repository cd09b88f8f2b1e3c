"""Names and units of result variables, so that plots label themselves.

xarray's ``.plot()`` labels an axis ``long_name [units]``; ArviZ and netCDF tools read
the same attributes (CF conventions: ``"1"`` is the unit of a dimensionless number).
:func:`rdppl.results.label_groups` adds them to variables in one place, when
:func:`rdppl.results.make_tree` assembles a result (the distortion's units depend on
the run); attributes a group already sets are kept. Coordinates are named by
``COORDINATE_NAMES`` where :func:`rdppl.results.make_group` builds a group.
"""

from __future__ import annotations

from collections.abc import Mapping

import xarray as xr

__all__ = ["COORDINATE_NAMES", "LABELLED_GROUPS", "distortion_units", "label_groups"]

# groups of rdppl's own variables; site names (posterior, observed data) are the
# user's, and a site called ``rate`` is not a rate
LABELLED_GROUPS = frozenset(
    {
        "rate_distortion",
        "sample_stats",
        "bdmc",
        "log_marginal_likelihood",
        "variational_bounds",
        "variational",
        "echo",
    }
)

_DISTORTION = "<distortion>"  # replaced by the distortion's units, when known
_DISTORTION_SQUARED = "<distortion squared>"

# variable -> (long_name, units)
_VARIABLES: dict[str, tuple[str, str]] = {
    "rate": ("rate", "nats"),
    "distortion": ("distortion", _DISTORTION),
    "log_z": ("log partition function log Z", "nats"),
    "acceptance_rate": ("acceptance rate", "1"),
    "step_size": ("step size", "1"),
    "importance_ess": ("importance effective sample size", "chains"),
    "pareto_khat": ("Pareto k-hat of the importance weights", "1"),
    "distortion_variance": ("variance of the distortion", _DISTORTION_SQUARED),
    "num_divergent": ("chains with a divergent transition", "chains"),
    "num_nonfinite": ("chains with a non-finite density", "chains"),
    "resampled": ("chains resampled at this temperature", "1"),
    "num_transitions": ("transitions since the previous kept temperature", "1"),
    "inverse_mass_matrix_diagonal": ("diagonal of the inverse mass matrix", "1"),
    "lower": ("BDMC lower bound on log Z", "nats"),
    "upper": ("BDMC upper bound on log Z", "nats"),
    "gap": ("BDMC gap (upper - lower)", "nats"),
    "forward_importance_ess": ("forward AIS importance ESS", "chains"),
    "reverse_importance_ess": ("reverse AIS importance ESS", "chains"),
    "forward_pareto_khat": ("forward AIS Pareto k-hat", "1"),
    "reverse_pareto_khat": ("reverse AIS Pareto k-hat", "1"),
    "num_temperatures": ("number of temperatures", "1"),
    "log_marginal_likelihood": ("log marginal likelihood log p(x)", "nats"),
    "rate_standard_error": ("standard error of the rate", "nats"),
    "distortion_standard_error": ("standard error of the distortion", _DISTORTION),
    "elbo": ("evidence lower bound", "nats"),
}
# per-group exceptions: importance sampling and IWAE count samples, not chains
_GROUP_VARIABLES: dict[str, dict[str, tuple[str, str]]] = {
    "log_marginal_likelihood": {
        "importance_ess": ("importance effective sample size", "samples"),
    },
}
COORDINATE_NAMES = {"beta": "inverse temperature beta"}


def distortion_units(distortion: str | None) -> tuple[str | None, str | None]:
    """Units of a distortion and of its square, or ``None`` where unknown.

    Parameters
    ----------
    distortion
        The result's ``distortion`` attribute: ``"nll"`` (nats), ``"squared_error"``
        (the data's units squared) or a user function's name (unknown units).

    Returns
    -------
    tuple of str or None
        Units of the distortion and of its variance.
    """
    if distortion == "nll":
        return "nats", "nats^2"
    if distortion == "squared_error":
        return "squared data units", None
    return None, None


def label_groups(
    groups: Mapping[str, xr.Dataset], *, distortion: str | None = None
) -> dict[str, xr.Dataset]:
    """Copies of ``groups`` whose known variables have ``long_name`` and ``units``.

    Parameters
    ----------
    groups
        Group name to dataset; only ``LABELLED_GROUPS`` get labels (the
        ``beta`` coordinate gets its ``long_name`` where a group is built,
        :func:`rdppl.results.make_group`).
    distortion
        The distortion's name, which decides its units
        (:func:`rdppl.results.distortion_units`); without known units a distortion
        gets a ``long_name`` only.

    Returns
    -------
    dict of str to xarray.Dataset
        New datasets (the arrays are shared, the attributes are not).
    """
    plain, squared = distortion_units(distortion)
    units = {_DISTORTION: plain, _DISTORTION_SQUARED: squared}
    labelled = {}
    for group, dataset in groups.items():
        table = _VARIABLES | _GROUP_VARIABLES.get(group, {})
        dataset = dataset.copy(deep=False)  # new attribute dicts, shared arrays
        for name, variable in dataset.variables.items():
            if name in dataset.coords or group not in LABELLED_GROUPS:
                continue
            long_name, unit = table.get(str(name), (None, None))
            label = {"long_name": long_name, "units": units.get(unit, unit)}
            for key, value in label.items():
                if value is not None:
                    variable.attrs.setdefault(key, value)
        labelled[group] = dataset
    return labelled
