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
    "rate_distortion_group",
    "sample_stats_group",
    "observed_group",
    "posterior_groups",
    "bdmc_groups",
    "example_group",
    "log_likelihood_group",
    "run_attrs",
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
    import arviz_base  # imports matplotlib's settings: loaded on first use

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


# --------------------------------------------------------------------------------------
# the groups of AIS results


def _site_dims(name: str, leading: tuple[str, ...], ndim: int) -> tuple[str, ...]:
    return leading + tuple(f"{name}_dim_{i}" for i in range(ndim - len(leading)))


def rate_distortion_group(
    betas: np.ndarray, distortion: np.ndarray, log_z: np.ndarray
) -> xr.Dataset:
    """Group ``rate_distortion``: ``rate``, ``distortion``, ``log_z`` (docs/math.md §2).

    The rate follows from ``log Z = -beta D - R``.
    """
    from rdppl.estimators import rate_from

    distortion = np.asarray(distortion, np.float64)
    log_z = np.asarray(log_z, np.float64)
    rate = np.asarray(rate_from(np.asarray(betas)[None, :], distortion, log_z))
    return curve_group(
        {"rate": rate, "distortion": distortion, "log_z": log_z},
        betas,
        attrs={"units": "nats"},
    )


def sample_stats_group(betas: np.ndarray, run: Any) -> xr.Dataset:
    """Group ``sample_stats`` from a host-side AIS run (``rdppl.runner.AISRun``)."""
    return curve_group(
        {
            "acceptance_rate": run.acceptance_rate,
            "step_size": run.step_size,
            "effective_sample_size": run.effective_sample_size,
            "num_divergent": run.num_divergent,
            "num_nonfinite": run.num_nonfinite,
        },
        betas,
    )


def observed_group(
    name: str, data: Any, *, leading: tuple[str, ...] = (EXAMPLE_DIM,), coords=None
) -> xr.Dataset:
    """Group ``observed_data``: the examples under the observed site's name."""
    values = np.asarray(data)
    return make_group(
        {name: values},
        dims={name: _site_dims(name, leading, values.ndim)},
        coords=coords or {EXAMPLE_DIM: np.arange(values.shape[0])},
    )


def posterior_groups(
    values: Mapping[str, np.ndarray], log_weight: np.ndarray, betas: np.ndarray
) -> dict[str, xr.Dataset]:
    """Groups ``posterior`` and ``posterior_weights`` from weighted chains.

    Parameters
    ----------
    values
        Site name to values ``(example, beta, chain, ...)``.
    log_weight
        Log weights ``(example, beta, chain)``; chains with a non-finite site value
        get zero weight.
    betas
        The temperatures of the ``beta`` axis.
    """
    values = {name: np.asarray(v) for name, v in values.items()}
    log_weight = np.asarray(log_weight, np.float64)
    finite = np.all(
        [np.isfinite(v).reshape(v.shape[:3] + (-1,)).all(-1) for v in values.values()],
        axis=0,
    )
    log_weight = np.where(finite, log_weight, -np.inf)
    weight = np.exp(log_weight - np.max(log_weight, axis=-1, keepdims=True))
    weight = weight / weight.sum(-1, keepdims=True)
    leading = (EXAMPLE_DIM, BETA_DIM, "chain")
    coords = {
        EXAMPLE_DIM: np.arange(log_weight.shape[0]),
        BETA_DIM: np.asarray(betas, np.float64),
        "chain": np.arange(log_weight.shape[-1]),
    }
    posterior = make_group(
        values,
        dims={name: _site_dims(name, leading, v.ndim) for name, v in values.items()},
        coords=coords,
    )
    weights = make_group(
        {"log_weight": log_weight, "weight": weight},
        dims={"log_weight": leading, "weight": leading},
        coords=coords,
    )
    return {"posterior": posterior, "posterior_weights": weights}


def bdmc_groups(
    betas: np.ndarray,
    bounds: Mapping[str, np.ndarray],
    *,
    observed: str,
    simulated: np.ndarray,
    latents: Mapping[str, np.ndarray],
) -> dict[str, xr.Dataset]:
    """Groups ``bdmc``, ``observed_data`` and ``true_latents`` (docs/math.md §4).

    ``bounds`` maps ``lower``, ``upper``, ``distortion``, the two effective sample
    sizes and ``num_temperatures`` to ``(example, beta)`` arrays; ``gap`` is added.
    """
    arrays = {name: np.asarray(v, np.float64) for name, v in bounds.items()}
    arrays["gap"] = arrays["upper"] - arrays["lower"]
    arrays["num_temperatures"] = np.asarray(bounds["num_temperatures"])
    order = ["lower", "upper", "gap"] + [
        n for n in arrays if n not in ("lower", "upper", "gap")
    ]
    coords = {
        EXAMPLE_DIM: np.arange(arrays["lower"].shape[0]),
        BETA_DIM: np.asarray(betas, np.float64),
    }
    return {
        "bdmc": curve_group(
            {n: arrays[n] for n in order}, betas, attrs={"units": "nats"}
        ),
        "observed_data": observed_group(
            observed, simulated, leading=CURVE_DIMS, coords=coords
        ),
        "true_latents": make_group(
            latents,
            dims={
                name: _site_dims(name, CURVE_DIMS, np.ndim(v))
                for name, v in latents.items()
            },
            coords=coords,
        ),
    }


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


def log_likelihood_group(
    estimate: np.ndarray, effective_sample_size: np.ndarray, *, method: str
) -> xr.Dataset:
    """Group ``log_likelihood``: ``log p(x)`` estimates per example (§5)."""
    dims = {"log_likelihood": (EXAMPLE_DIM,), "effective_sample_size": (EXAMPLE_DIM,)}
    return make_group(
        {
            "log_likelihood": np.asarray(estimate, np.float64),
            "effective_sample_size": np.asarray(effective_sample_size, np.float64),
        },
        dims=dims,
        coords={EXAMPLE_DIM: np.arange(np.shape(estimate)[0])},
        attrs={"method": method, "units": "nats"},
    )


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


def to_netcdf(tree: xr.DataTree, path: str | os.PathLike) -> None:
    """Write a result tree to a netCDF4 file (h5netcdf engine)."""
    tree.to_netcdf(path, engine="h5netcdf")


def from_netcdf(path: str | os.PathLike) -> xr.DataTree:
    """Read a result tree written by :func:`to_netcdf` (loaded into memory)."""
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return tree.load()


# --------------------------------------------------------------------------------------
# the results of the encoder trainers (rdppl.training): their curve group over
# (example, rate_weight), their trained parameters, and the explicit conversion of the
# rate weight to the AIS inverse temperature

RATE_WEIGHT_DIM = "rate_weight"
TRAINED_PARAMETERS_GROUP = "trained_parameters"
TRAINER_CURVE_GROUPS = ("variational", "echo")
TRAINER_CURVE_DIMS = (EXAMPLE_DIM, RATE_WEIGHT_DIM)

__all__ += [  # the names of this section
    "RATE_WEIGHT_DIM",
    "TRAINED_PARAMETERS_GROUP",
    "TRAINER_CURVE_GROUPS",
    "as_inverse_temperature",
    "stored_parameters",
    "trained_parameters",
    "trained_parameters_group",
    "trainer_curve_group",
    "trainer_tree",
]


def trainer_curve_group(
    variables: Mapping[str, Any],
    rate_weights: Any,
    *,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A trainer's group (``variational`` or ``echo``) over ``(example, rate_weight)``.

    Parameters
    ----------
    variables
        Variable name to array of shape ``(example, rate_weight)``.
    rate_weights
        The weights of the rate in ``distortion + rate_weight * rate``.
    attrs
        Group attributes; ``ais_inverse_temperature = "1 / rate_weight"`` is added.

    Returns
    -------
    xarray.Dataset
        With coordinates ``example`` (integers) and ``rate_weight`` (float64).
    """
    arrays = {name: np.asarray(value) for name, value in variables.items()}
    num_examples = next(iter(arrays.values())).shape[0]
    return make_group(
        arrays,
        dims={name: TRAINER_CURVE_DIMS for name in arrays},
        coords={
            EXAMPLE_DIM: np.arange(num_examples),
            RATE_WEIGHT_DIM: np.asarray(rate_weights, dtype=np.float64),
        },
        attrs={**(attrs or {}), "ais_inverse_temperature": "1 / rate_weight"},
    )


def trained_parameters_group(
    parts: Mapping[str, list[Any]],
    rate_weights: Any,
    *,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Group ``trained_parameters``: the array leaves of stacked trained modules.

    Leaf ``i`` of part ``name`` (e.g. ``"encoder"``) becomes the variable
    ``f"{name}_{i}"`` with dims ``(rate_weight, f"{name}_{i}_dim_0", ...)``; the
    attribute ``f"num_{name}_leaves"`` records how many there are.

    Parameters
    ----------
    parts
        Part name to the leaves of its stack, in pytree order, each with a leading
        axis of size ``len(rate_weights)``.
    rate_weights
        The ``rate_weight`` coordinate.
    attrs
        Settings needed to rebuild the modules (made netCDF-safe).

    Returns
    -------
    xarray.Dataset
    """
    variables: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for part, leaves in parts.items():
        counts[f"num_{part}_leaves"] = len(leaves)
        for index, leaf in enumerate(leaves):
            variables[f"{part}_{index}"] = np.asarray(leaf)
    return make_group(
        variables,
        dims={
            name: (RATE_WEIGHT_DIM, *(f"{name}_dim_{i}" for i in range(value.ndim - 1)))
            for name, value in variables.items()
        },
        coords={RATE_WEIGHT_DIM: np.asarray(rate_weights, dtype=np.float64)},
        attrs={**(attrs or {}), **counts},
    )


def trained_parameters(tree: xr.DataTree) -> xr.Dataset:
    """The ``trained_parameters`` group of a trainer's result, as a dataset.

    Parameters
    ----------
    tree
        A result of a trainer of :mod:`rdppl.training`.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    ValueError
        If the tree has no such group.
    """
    if not isinstance(tree, xr.DataTree):
        raise TypeError(f"expected a trainer's xarray.DataTree, got {type(tree)}")
    if TRAINED_PARAMETERS_GROUP not in tree.children:
        raise ValueError(
            f"the tree has no {TRAINED_PARAMETERS_GROUP!r} group (groups: "
            f"{sorted(tree.children)}); it is not the result of an rdppl trainer"
        )
    return tree[TRAINED_PARAMETERS_GROUP].to_dataset()


def stored_parameters(group: xr.Dataset, part: str) -> list[np.ndarray]:
    """The leaves of ``part`` stored by :func:`trained_parameters_group`, in order.

    Parameters
    ----------
    group
        A ``trained_parameters`` group.
    part
        ``"encoder"`` or ``"decoder"``.

    Returns
    -------
    list of numpy.ndarray
        Each with the leading ``rate_weight`` axis.

    Raises
    ------
    ValueError
        If the group stores no complete set of leaves for ``part``.
    """
    count = int(group.attrs.get(f"num_{part}_leaves", 0))
    names = [f"{part}_{index}" for index in range(count)]
    missing = [name for name in names if name not in group.data_vars]
    if count == 0 or missing:
        raise ValueError(
            f"the {TRAINED_PARAMETERS_GROUP!r} group stores no complete {part!r} "
            f"parameters ({count} leaves recorded, missing {missing})"
        )
    return [group[name].values for name in names]


def trainer_tree(trainer: str, groups: Mapping[str, xr.Dataset]) -> xr.DataTree:
    """A trainer's result tree, named after the trainer, with the library versions.

    Parameters
    ----------
    trainer
        The trainer's name (``"beta_vae"``, ...): the tree's name and ``trainer``
        attribute.
    groups
        Group name to dataset (the curve group and ``trained_parameters``).

    Returns
    -------
    xarray.DataTree
    """
    return make_tree(groups, attrs={"trainer": trainer, **versions()}, name=trainer)


def _rate_weight_to_beta(dataset: xr.Dataset) -> xr.Dataset:
    if RATE_WEIGHT_DIM not in dataset.dims or BETA_DIM in dataset.dims:
        raise ValueError(
            f"expected a group with a {RATE_WEIGHT_DIM!r} dimension and no "
            f"{BETA_DIM!r} dimension, got dimensions {dict(dataset.sizes)}"
        )
    weights = dataset[RATE_WEIGHT_DIM].values
    if not np.all(np.isfinite(weights) & (weights > 0)):
        raise ValueError(f"rate weights must be positive and finite, got {weights}")
    converted = (
        dataset.assign_coords({BETA_DIM: (RATE_WEIGHT_DIM, 1.0 / weights)})
        .swap_dims({RATE_WEIGHT_DIM: BETA_DIM})
        .sortby(BETA_DIM)
    )
    converted.attrs = {
        **dataset.attrs,
        "ais_inverse_temperature": "beta = 1 / rate_weight",
    }
    return converted


def as_inverse_temperature(result: xr.DataTree | xr.Dataset) -> Any:
    """Re-index a trainer's curve on the AIS inverse temperature ``1 / rate_weight``.

    A trainer minimises ``distortion + rate_weight * rate``; AIS
    (:func:`rdppl.rd_curve`) weights the distortion, ``pi_beta ~ p(z) exp(-beta d)``.
    The two describe the same slope of the rate-distortion curve when
    ``beta = 1 / rate_weight``. Only this explicit conversion puts a trainer's result
    on the ``beta`` axis of an AIS curve.

    Parameters
    ----------
    result
        A trainer's result tree, or one of its curve groups as a dataset (any dataset
        with a ``rate_weight`` dimension).

    Returns
    -------
    xarray.DataTree or xarray.Dataset
        The same kind as ``result``. Variables are indexed by ``beta`` (increasing);
        ``rate_weight`` stays as a coordinate along it. A tree keeps its name and root
        attributes and holds only its curve groups (``variational``, ``echo``): the
        trained parameters stay with the original tree.

    Raises
    ------
    ValueError
        If there is no ``rate_weight`` dimension (e.g. an AIS result), a ``beta`` one
        already, or a rate weight that is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> group = trainer_curve_group({"rate": np.ones((3, 2))}, [0.5, 2.0])
    >>> as_inverse_temperature(group)["beta"].values
    array([0.5, 2. ])
    """
    if isinstance(result, xr.Dataset):
        return _rate_weight_to_beta(result)
    if not isinstance(result, xr.DataTree):
        raise TypeError(
            f"expected an xarray.DataTree or xarray.Dataset, got {type(result)}"
        )
    groups = {
        name: _rate_weight_to_beta(result[name].to_dataset())
        for name in TRAINER_CURVE_GROUPS
        if name in result.children
    }
    if not groups:
        raise ValueError(
            f"the tree has none of the trainer groups {TRAINER_CURVE_GROUPS} (groups: "
            f"{sorted(result.children)})"
        )
    return make_tree(groups, attrs=result.attrs, name=result.name)
