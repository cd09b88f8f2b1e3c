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
    "log_marginal_likelihood_group",
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
    from rdppl.numerics.estimators import rate_from

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
    kernel: Any = None,
) -> xr.Dataset:
    """Group ``sample_stats`` from a host-side AIS run (``sampler.records.AISRun``).

    Per temperature: the importance weights' ``importance_ess`` (Kish) and
    ``pareto_khat`` (docs/math.md §2.5), the kernel's achieved ``acceptance_rate``,
    ``step_size``, ``num_divergent``, ``num_nonfinite``, the
    ``distortion_variance`` and whether the chains were ``resampled``
    (docs/math.md §3.7). The kernel's target acceptance is an attribute, and
    with ``kernel`` its step-size settings (``adapt_step_size``,
    ``initial_step_size``, ``step_size_min``, ``step_size_max``), which
    :func:`rdppl.diagnostics.check_result` reads. With a ``mass_matrix`` other
    than the identity the replayed inverse mass matrix's diagonal is kept as
    ``inverse_mass_matrix_diagonal`` ``(example, beta, latent_dimension)`` (NaN at
    ``beta = 0``, where no transition runs).
    """
    variables = {
        "acceptance_rate": run.acceptance_rate,
        "step_size": run.step_size,
        "importance_ess": run.effective_sample_size,
        "pareto_khat": run.pareto_khat,
        "distortion_variance": run.distortion_variance,
        "num_divergent": run.num_divergent,
        "num_nonfinite": run.num_nonfinite,
    }
    if getattr(run.tuning, "resample", None) is not None:
        variables["resampled"] = run.resampled  # since the previous beta
    dims = {}
    kept = np.asarray(run.kept)
    if len(kept) < kept[-1] + 1:  # a thinned run: each point sums a block
        variables["num_transitions"] = np.diff(kept, prepend=0)
        dims["num_transitions"] = (CURVE_DIMS[-1],)
    if mass_matrix != "identity":
        imm = np.asarray(run.tuning.inverse_mass_matrix, np.float64)
        diagonal = np.diagonal(imm, axis1=-2, axis2=-1) if imm.ndim == 4 else imm
        start = np.full((1, *diagonal.shape[1:]), np.nan)
        variables["inverse_mass_matrix_diagonal"] = np.swapaxes(
            np.concatenate([start, diagonal]), 0, 1
        )
        dims["inverse_mass_matrix_diagonal"] = (*CURVE_DIMS, "latent_dimension")
    attrs: dict[str, Any] = {
        "target_acceptance": float(target_acceptance),
        "mass_matrix": mass_matrix,
    }
    if kernel is not None:
        low, high = kernel.step_size_bounds
        attrs.update(
            adapt_step_size=bool(kernel.adapt_step_size),
            initial_step_size=float(kernel.step_size),
            step_size_min=float(low),
            step_size_max=float(high),
        )
    return curve_group(variables, betas, dims=dims, attrs=attrs)


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


POSTERIOR_CHAINS = 2


def posterior_groups(
    values: Mapping[str, np.ndarray],
    log_weight: np.ndarray,
    betas: np.ndarray,
    *,
    rng_key: Any,
    posterior_chains: int = POSTERIOR_CHAINS,
) -> dict[str, xr.Dataset]:
    """Groups ``posterior`` and ``weighted_posterior`` (docs/math.md §2.6).

    ``weighted_posterior`` keeps the AIS chains as they are: every site over
    ``(example, beta, ais_chain, ...)`` with their ``log_weight`` and normalised
    ``weight``. ``posterior`` holds equal-weight draws over ArviZ's sample dims,
    ``(chain, draw, example, beta, ...)``: the AIS chains are split into
    ``posterior_chains`` blocks of consecutive ``ais_chain`` (``ceil(M / chains)``
    each, the last one shorter when they do not divide), and ``chain`` ``c`` holds
    as many draws as a block has places, drawn from block ``c`` alone by
    systematic resampling with the block's own normalised weights. The chains are
    thus independent importance-sampling estimates (R-hat compares them), and
    within a chain the draws follow the order of their ancestors (a chain drawn
    ``n`` times appears as a run of ``n`` copies, which ArviZ's ESS and MCSE see).

    Parameters
    ----------
    values
        Site name to values ``(example, beta, ais_chain, ...)``.
    log_weight
        Log weights ``(example, beta, ais_chain)``; chains with a non-finite site
        value get zero weight. Where no chain of a block has weight, that chain's
        draws are NaN.
    betas
        The temperatures of the ``beta`` axis.
    rng_key
        JAX key of the resampling (the result is deterministic given it).
    posterior_chains
        The number of ``chain`` (at most the number of AIS chains).
    """
    from rdppl.numerics.estimators import systematic_resample

    values = {name: np.asarray(v) for name, v in values.items()}
    log_weight = np.asarray(log_weight, np.float64)
    finite = np.all(
        [np.isfinite(v).reshape(v.shape[:3] + (-1,)).all(-1) for v in values.values()],
        axis=0,
    )
    log_weight = np.where(finite, log_weight, -np.inf)
    top = np.max(log_weight, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        weight = np.exp(log_weight - np.where(np.isfinite(top), top, 0.0))
        weight = weight / weight.sum(-1, keepdims=True)
    num_examples, num_betas, num_chains = log_weight.shape
    coords = {
        EXAMPLE_DIM: np.arange(num_examples),
        BETA_DIM: np.asarray(betas, np.float64),
    }
    leading = (EXAMPLE_DIM, BETA_DIM, "ais_chain")
    weighted = make_group(
        {**values, "log_weight": log_weight, "weight": weight},
        dims={name: site_dims(name, leading, v.ndim) for name, v in values.items()}
        | {"log_weight": leading, "weight": leading},
        coords=coords | {"ais_chain": np.arange(num_chains)},
        attrs={"weights": "self-normalised importance weights over ais_chain"},
    )
    weighted["log_weight"].attrs.update(long_name="log importance weight")
    weighted["weight"].attrs.update(long_name="normalised importance weight", units="1")
    chains = max(1, min(int(posterior_chains), num_chains))
    size = -(-num_chains // chains)  # AIS chains per block, draws per chain
    chains = -(-num_chains // size)  # no empty block (9 AIS chains in 4: 3 of 3)
    padding = np.full((num_examples, num_betas, chains * size - num_chains), -np.inf)
    blocks = np.concatenate([log_weight, padding], axis=-1).reshape(
        num_examples, num_betas, chains, size
    )
    members = np.minimum(size, num_chains - size * np.arange(chains))[:, None]
    index = np.asarray(systematic_resample(rng_key, blocks))  # within each block
    index = (
        np.minimum(index, members - 1) + size * np.arange(chains)[:, None]
    ).reshape(num_examples, num_betas, chains * size)
    alive = np.any(np.isfinite(blocks), axis=-1)  # (example, beta, chain)
    draws = {}
    for name, v in values.items():
        taken = np.take_along_axis(
            v, index.reshape(index.shape + (1,) * (v.ndim - 3)), axis=2
        ).reshape(num_examples, num_betas, chains, size, *v.shape[3:])
        if not alive.all():
            taken = taken.astype(np.result_type(taken.dtype, np.float64))
            taken[~alive] = np.nan
        # (example, beta, chain, draw, ...) -> (chain, draw, example, beta, ...)
        draws[name] = np.moveaxis(taken, (2, 3), (0, 1))
    sample = ("chain", "draw", EXAMPLE_DIM, BETA_DIM)
    posterior = make_group(
        draws,
        dims={name: site_dims(name, sample, v.ndim) for name, v in draws.items()},
        coords=coords | {"chain": np.arange(chains), "draw": np.arange(size)},
        attrs={
            "resampling": "systematic, per block of ais_chain",
            "ais_chains_per_chain": size,
            "note": "equal-weight draws resampled from weighted_posterior: chain c "
            "from ais_chain c * ais_chains_per_chain onwards, by their own weights; "
            "the draws are not a Markov chain (docs/analysing.md)",
        },
        sample_dims=("chain", "draw"),
    )
    return {"posterior": posterior, "weighted_posterior": weighted}


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


def log_marginal_likelihood_group(
    estimate: np.ndarray,
    importance_ess: np.ndarray,
    *,
    method: str,
    pareto_khat: np.ndarray | None = None,
) -> xr.Dataset:
    """Group ``log_marginal_likelihood``: ``log p(x)`` estimates per example (§5).

    Named as PyMC names its marginal-likelihood estimates: ArviZ reserves the
    ``log_likelihood`` group for pointwise log-likelihoods of posterior draws.
    Variables ``log_marginal_likelihood`` and ``importance_ess`` (and, for the AIS
    methods, the ``pareto_khat`` of the final weights) over ``(example,)``.
    """
    variables = {
        "log_marginal_likelihood": np.asarray(estimate, np.float64),
        "importance_ess": np.asarray(importance_ess, np.float64),
    }
    if pareto_khat is not None:
        variables["pareto_khat"] = np.asarray(pareto_khat, np.float64)
    return make_group(
        variables,
        dims={name: (EXAMPLE_DIM,) for name in variables},
        coords={EXAMPLE_DIM: np.arange(np.shape(estimate)[0])},
        attrs={"method": method, "units": "nats"},
    )
