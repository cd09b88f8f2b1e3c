"""The groups of AIS results: curves, diagnostics, data, posteriors, BDMC, log p(x)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from rdppl.results.core import (
    BETA_DIM,
    CURVE_DIMS,
    EXAMPLE_DIM,
    curve_group,
    make_group,
    site_dims,
)

__all__ = [
    "bdmc_groups",
    "log_likelihood_group",
    "observed_group",
    "posterior_groups",
    "rate_distortion_group",
    "sample_stats_group",
]


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


def sample_stats_group(
    betas: np.ndarray,
    run: Any,
    *,
    target_acceptance: float,
    mass_matrix: str = "identity",
) -> xr.Dataset:
    """Group ``sample_stats`` from a host-side AIS run (``rdppl.runner.AISRun``).

    The kernel's target acceptance is an attribute, beside the achieved
    ``acceptance_rate``. With a ``mass_matrix`` other than the identity the replayed
    inverse mass matrix's diagonal is kept as ``inverse_mass_matrix_diagonal``
    ``(example, beta, latent_dimension)`` (NaN at ``beta = 0``, where no transition
    runs).
    """
    variables = {
        "acceptance_rate": run.acceptance_rate,
        "step_size": run.step_size,
        "effective_sample_size": run.effective_sample_size,
        "distortion_variance": run.distortion_variance,
        "num_divergent": run.num_divergent,
        "num_nonfinite": run.num_nonfinite,
    }
    dims = {}
    if mass_matrix != "identity":
        imm = np.asarray(run.tuning.inverse_mass_matrix, np.float64)
        diagonal = np.diagonal(imm, axis1=-2, axis2=-1) if imm.ndim == 4 else imm
        start = np.full((1, *diagonal.shape[1:]), np.nan)
        variables["inverse_mass_matrix_diagonal"] = np.swapaxes(
            np.concatenate([start, diagonal]), 0, 1
        )
        dims["inverse_mass_matrix_diagonal"] = (*CURVE_DIMS, "latent_dimension")
    return curve_group(
        variables,
        betas,
        dims=dims,
        attrs={
            "target_acceptance": float(target_acceptance),
            "mass_matrix": mass_matrix,
        },
    )


def observed_group(
    name: str, data: Any, *, leading: tuple[str, ...] = (EXAMPLE_DIM,), coords=None
) -> xr.Dataset:
    """Group ``observed_data``: the examples under the observed site's name."""
    values = np.asarray(data)
    return make_group(
        {name: values},
        dims={name: site_dims(name, leading, values.ndim)},
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
        dims={name: site_dims(name, leading, v.ndim) for name, v in values.items()},
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
                name: site_dims(name, CURVE_DIMS, np.ndim(v))
                for name, v in latents.items()
            },
            coords=coords,
        ),
    }


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
