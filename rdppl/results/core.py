"""Dimensions, netCDF-safe attributes, and building groups and trees."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "BETA_DIM",
    "CURVE_DIMS",
    "EXAMPLE_DIM",
    "curve_group",
    "example_group",
    "make_group",
    "make_tree",
    "netcdf_attrs",
    "run_attrs",
    "site_dims",
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
    sample_dims: Sequence[str] = (),
) -> xr.Dataset:
    """Build one group's dataset from arrays.

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
    sample_dims
        ArviZ's sample dimensions of the group (``("chain", "draw")`` for a
        posterior), recorded as the attribute ``sample_dims`` (a list of str, which
        arviz-base 1.x reads in place of its default). Groups without sample
        dimensions (curves, diagnostics, data) carry no such attribute.
    """
    dims = dict(dims or {})
    for name, value in variables.items():
        if name not in dims and np.ndim(value) == 2:
            dims[name] = CURVE_DIMS
    import arviz_base  # imports matplotlib's settings: loaded on first use

    dataset = arviz_base.dict_to_dataset(
        {name: np.asarray(value) for name, value in variables.items()},
        sample_dims=[],  # ``dims`` name every axis, sample dimensions included
        dims={name: list(d) for name, d in dims.items()},
        coords=dict(coords or {}),
        attrs=dict(attrs or {}),
        check_conventions=False,
    )
    # arviz-base 1.x records ``sample_dims`` (``[]`` for a group without any, which
    # it then reads as "no sample dimensions"); other attributes are made
    # netCDF-safe, and ``sample_dims`` stays a list of str (rdppl's files keep it).
    dataset.attrs.pop("sample_dims", None)
    dataset.attrs = netcdf_attrs(dataset.attrs)
    from rdppl.results.labels import COORDINATE_NAMES

    for name, long_name in COORDINATE_NAMES.items():
        if name in dataset.coords:
            dataset[name].attrs.setdefault("long_name", long_name)
    if sample_dims:
        missing = [dim for dim in sample_dims if dim not in dataset.dims]
        if missing:
            raise ValueError(
                f"sample_dims {list(sample_dims)} name {missing}, which are not "
                f"dimensions of the group (it has {list(dataset.dims)})"
            )
        dataset.attrs["sample_dims"] = [str(dim) for dim in sample_dims]
    return dataset


def curve_group(
    variables: Mapping[str, Any],
    betas: Any,
    *,
    dim: str = BETA_DIM,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A group whose variables have dims ``(example, dim)`` unless ``dims`` says.

    ``dim`` is ``beta`` by default.
    """
    arrays = {name: np.asarray(value) for name, value in variables.items()}
    num_examples = next(iter(arrays.values())).shape[0]
    return make_group(
        arrays,
        dims={name: (EXAMPLE_DIM, dim) for name in arrays} | dict(dims or {}),
        coords={
            EXAMPLE_DIM: np.arange(num_examples),
            dim: np.asarray(betas, dtype=np.float64),
        },
        attrs=attrs,
    )


def make_tree(
    groups: Mapping[str, xr.Dataset],
    *,
    attrs: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> xr.DataTree:
    """Assemble groups into a tree whose root carries netCDF-safe attributes.

    rdppl's own variables get ``long_name`` and ``units`` (the distortion's from
    ``attrs["distortion"]``), see :func:`rdppl.results.label_groups`.
    """
    from rdppl.results.labels import label_groups

    distortion = (attrs or {}).get("distortion")
    labelled = label_groups(
        groups, distortion=distortion if isinstance(distortion, str) else None
    )
    tree = xr.DataTree.from_dict(
        {f"/{group}": dataset for group, dataset in labelled.items()}, name=name
    )
    tree.attrs = netcdf_attrs(attrs or {})
    return tree


def versions() -> dict[str, str]:
    """Versions of rdppl and the libraries that shaped a result."""
    import blackjax
    import jax
    import numpyro

    from rdppl._version import __version__

    return {
        "rdppl_version": __version__,
        "jax_version": jax.__version__,
        "numpyro_version": numpyro.__version__,
        "blackjax_version": blackjax.__version__,
        "jax_backend": jax.default_backend(),
    }


def run_attrs(
    structure: Any,
    kernel: Any,
    *,
    rng_key: Any,
    num_chains: int,
    betas: np.ndarray | None,
    wall_time: float,
    num_gradient_evaluations: int,
    **extra: Any,
) -> dict[str, Any]:
    """Settings, provenance and cost of a run, as root attributes."""
    import jax

    key_data = rng_key
    if jax.dtypes.issubdtype(rng_key.dtype, jax.dtypes.prng_key):
        key_data = jax.random.key_data(rng_key)
    attrs = {
        "observed_site": structure.observed,
        "reconstruction_site": structure.reconstruction,
        "distortion": structure.distortion,
        "latent_sites": list(structure.latent_names),
        "num_latent_dimensions": structure.num_latent_dimensions,
        "num_chains": num_chains,
    }
    if betas is not None:
        attrs["num_temperatures"] = len(betas) - 1
        attrs["beta_max"] = float(betas[-1])
    attrs.update(
        kernel="none" if kernel is None else repr(kernel),
        rng_key=[int(v) for v in np.asarray(key_data).ravel()],
        wall_time_seconds=wall_time,
        num_gradient_evaluations=num_gradient_evaluations,
        **extra,
        **versions(),
    )
    return attrs


def site_dims(name: str, leading: tuple[str, ...], ndim: int) -> tuple[str, ...]:
    """Leading dimensions, then ``{name}_dim_{i}`` for the site's own axes."""
    return leading + tuple(f"{name}_dim_{i}" for i in range(ndim - len(leading)))


def example_group(
    variables: Mapping[str, Any], *, attrs: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """A group whose variables are all over ``(example,)``."""
    arrays = {name: np.asarray(value, np.float64) for name, value in variables.items()}
    num_examples = next(iter(arrays.values())).shape[0]
    return make_group(
        arrays,
        dims={name: (EXAMPLE_DIM,) for name in arrays},
        coords={EXAMPLE_DIM: np.arange(num_examples)},
        attrs=attrs,
    )
