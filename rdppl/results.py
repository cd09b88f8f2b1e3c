"""The result schema: every ``xarray.DataTree`` rdppl returns is assembled here.

Groups follow arviz-base conventions (built with :func:`arviz_base.dict_to_dataset`):

``rate_distortion``
    ``rate``, ``distortion``, ``log_z`` over ``(example, beta)``; coordinate ``beta``.
``sample_stats``
    ``acceptance_rate``, ``step_size``, ``effective_sample_size``, ``num_divergent``,
    ``num_nonfinite`` over ``(example, beta)``.
``observed_data``
    The data, over ``(example, *observed dims)``.
``bdmc``, ``log_likelihood``, ``variational``, ``echo``
    Added by the estimators of those names, with the same ``example`` and ``beta``
    dimensions.

Attributes must survive ``to_netcdf``, so :func:`netcdf_attrs` turns booleans, ``None``
and containers into numbers and strings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import arviz_base
import numpy as np
import xarray as xr

__all__ = [
    "EXAMPLE_DIM",
    "BETA_DIM",
    "make_group",
    "make_tree",
    "curve_group",
    "netcdf_attrs",
    "to_netcdf",
    "from_netcdf",
    "versions",
]

EXAMPLE_DIM = "example"
BETA_DIM = "beta"
CURVE_DIMS = (EXAMPLE_DIM, BETA_DIM)


def netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Make attribute values storable in netCDF (numbers, strings, numeric arrays).

    Booleans become ``0``/``1``, ``None`` becomes ``"none"``, mappings and sequences of
    non-numbers become JSON strings, anything else its ``str``.
    """
    safe: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bool | np.bool_):
            safe[key] = int(value)
        elif value is None:
            safe[key] = "none"
        elif isinstance(value, int | float | str | np.integer | np.floating):
            safe[key] = value
        elif isinstance(value, Mapping | list | tuple):
            safe[key] = json.dumps(value, default=str)
        else:
            safe[key] = str(value)
    return safe


def make_group(
    variables: Mapping[str, Any],
    *,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build one group's dataset from arrays (no sample dimensions assumed).

    Parameters
    ----------
    variables
        Variable name to array.
    dims
        Variable name to dimension names; variables not listed get ``(example,
        beta)`` when two-dimensional.
    coords
        Coordinate values.
    attrs
        Group attributes (made netCDF-safe).
    """
    dims = dict(dims or {})
    for name, value in variables.items():
        if name not in dims and np.ndim(value) == 2:
            dims[name] = CURVE_DIMS
    dataset = arviz_base.dict_to_dataset(
        {name: np.asarray(value) for name, value in variables.items()},
        sample_dims=[],
        dims={name: list(d) for name, d in dims.items()},
        coords=dict(coords or {}),
        attrs=dict(attrs or {}),
        check_conventions=False,
    )
    # arviz-base adds its own attributes (1.x adds lists such as ``sample_dims``).
    dataset.attrs = netcdf_attrs(dataset.attrs)
    return dataset


def curve_group(
    variables: Mapping[str, Any],
    betas: Any,
    *,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A group whose variables all have dims ``(example, beta)``."""
    arrays = {name: np.asarray(value) for name, value in variables.items()}
    num_examples = next(iter(arrays.values())).shape[0]
    return make_group(
        arrays,
        dims={name: CURVE_DIMS for name in arrays},
        coords={
            EXAMPLE_DIM: np.arange(num_examples),
            BETA_DIM: np.asarray(betas, dtype=np.float64),
        },
        attrs=attrs,
    )


def make_tree(
    groups: Mapping[str, xr.Dataset],
    *,
    attrs: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> xr.DataTree:
    """Assemble groups into a tree whose root carries netCDF-safe attributes."""
    tree = xr.DataTree.from_dict(
        {f"/{group}": dataset for group, dataset in groups.items()}, name=name
    )
    tree.attrs = netcdf_attrs(attrs or {})
    return tree


def versions() -> dict[str, str]:
    """Versions of rdppl and the libraries that shaped a result."""
    import blackjax
    import jax
    import numpyro

    from rdppl import __version__

    return {
        "rdppl_version": __version__,
        "jax_version": jax.__version__,
        "numpyro_version": numpyro.__version__,
        "blackjax_version": blackjax.__version__,
        "jax_backend": jax.default_backend(),
    }


def to_netcdf(tree: xr.DataTree, path: str | os.PathLike) -> None:
    """Write a result tree to a netCDF4 file (h5netcdf engine)."""
    tree.to_netcdf(path, engine="h5netcdf")


def from_netcdf(path: str | os.PathLike) -> xr.DataTree:
    """Read a result tree written by :func:`to_netcdf` (loaded into memory)."""
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return tree.load()
