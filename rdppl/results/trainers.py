"""The results of the encoder trainers (:mod:`rdppl.training`).

Their curve group over ``(example, rate_weight)``, their trained parameters, and the
explicit conversion of the rate weight to the AIS inverse temperature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from rdppl.results.core import (
    BETA_DIM,
    curve_group,
    make_group,
    make_tree,
    versions,
)

__all__ = [
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

RATE_WEIGHT_DIM = "rate_weight"
TRAINED_PARAMETERS_GROUP = "trained_parameters"
TRAINER_CURVE_GROUPS = ("variational", "echo")


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
    return curve_group(
        variables,
        rate_weights,
        dim=RATE_WEIGHT_DIM,
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
