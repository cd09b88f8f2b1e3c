"""Estimates from importance weights: plain array maths along a chain axis.

All functions take log weights (not weights) and reduce over ``axis`` (the chains).
Non-finite log weights are expected to have been replaced by ``-inf`` (zero weight)
by the caller, which also counts them (docs/math.md §2). Given NumPy arrays,
:func:`log_mean_exp` and :func:`effective_sample_size` compute on the host in the
arrays' precision (float64 log weights stay float64 when JAX runs in float32).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from rdppl.numerics.diagnostics import pareto_khat

__all__ = [
    "TemperatureEstimates",
    "effective_sample_size",
    "log_mean_exp",
    "normalized_weights",
    "rate_from",
    "systematic_resample",
    "temperature_estimates",
    "weighted_mean",
]


class TemperatureEstimates(NamedTuple):
    """Estimates at one inverse temperature for one example."""

    log_z: jax.Array
    distortion: jax.Array
    distortion_variance: jax.Array
    effective_sample_size: jax.Array
    num_nonfinite: jax.Array
    pareto_khat: jax.Array


def _logsumexp(values: jax.Array | np.ndarray, axis: int) -> jax.Array | np.ndarray:
    if not isinstance(values, np.ndarray):
        return logsumexp(values, axis=axis)
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):  # all -inf: log(0) = -inf, as JAX gives
        total = np.log(np.sum(np.exp(values - top), axis=axis, keepdims=True))
    return np.squeeze(total + top, axis=axis)


def log_mean_exp(log_weights: jax.Array, axis: int = -1) -> jax.Array:
    """``log mean exp(log_weights)``: the AIS estimate of ``log Z``."""
    count = log_weights.shape[axis]
    return _logsumexp(log_weights, axis) - np.log(count)


def normalized_weights(log_weights: jax.Array, axis: int = -1) -> jax.Array:
    """Self-normalised weights ``w_i / sum_j w_j``; all-zero weights give NaN."""
    return jnp.exp(log_weights - logsumexp(log_weights, axis=axis, keepdims=True))


def weighted_mean(
    log_weights: jax.Array, values: jax.Array, axis: int = -1
) -> jax.Array:
    """Self-normalised importance-weighted mean of ``values`` (same shape)."""
    weights = normalized_weights(log_weights, axis=axis)
    # A chain with zero weight contributes nothing even if its value is not finite.
    safe_values = jnp.where(weights > 0, values, 0.0)
    return jnp.sum(weights * safe_values, axis=axis)


def effective_sample_size(log_weights: jax.Array, axis: int = -1) -> jax.Array:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``, between 1 and M."""
    exp = np.exp if isinstance(log_weights, np.ndarray) else jnp.exp
    return exp(
        2.0 * _logsumexp(log_weights, axis) - _logsumexp(2.0 * log_weights, axis)
    )


def temperature_estimates(
    log_weights: jax.Array, distortion: jax.Array, num_nonfinite: jax.Array
) -> TemperatureEstimates:
    """``log Zhat``, the weighted distortion, its variance, the ESS and k-hat.

    The variance ``Var_beta[d] = -dD/dbeta`` measures how fast the tempered
    distribution changes with ``beta`` (docs/math.md §3.1); the Pareto k-hat of the
    weights (:func:`rdppl.diagnostics.pareto_khat`, NaN with fewer than 30 chains)
    how heavy their tail is (§2.5).
    """
    mean = weighted_mean(log_weights, distortion)
    return TemperatureEstimates(
        log_z=log_mean_exp(log_weights),
        distortion=mean,
        distortion_variance=weighted_mean(log_weights, jnp.square(distortion - mean)),
        effective_sample_size=effective_sample_size(log_weights),
        num_nonfinite=num_nonfinite,
        pareto_khat=pareto_khat(log_weights),
    )


def systematic_resample(rng_key: jax.Array, log_weights: jax.Array) -> jax.Array:
    """Ancestor indices of as many equal-weight draws as weights, per row.

    Systematic resampling (BlackJAX's) of the self-normalised weights along the last
    axis, one key per row (folded from ``rng_key``): chain ``i`` is drawn
    ``floor(M wbar_i)`` or ``ceil(M wbar_i)`` times, and the indices come out
    sorted (docs/math.md §2.6). Rows without a positive weight give arbitrary
    indices; the caller masks them.

    Parameters
    ----------
    rng_key
        JAX random key.
    log_weights
        Unnormalised log weights ``(..., M)``; ``-inf`` is zero weight.

    Returns
    -------
    jax.Array
        Integer indices ``(..., M)`` into the last axis.
    """
    from blackjax.smc.resampling import systematic

    log_weights = np.asarray(log_weights, np.float64)
    shape = log_weights.shape
    num_chains = shape[-1]
    rows = log_weights.reshape(-1, num_chains)
    top = np.max(rows, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        weights = np.exp(rows - np.where(np.isfinite(top), top, 0.0))
        weights = np.nan_to_num(weights / weights.sum(-1, keepdims=True))
    keys = jax.random.split(rng_key, rows.shape[0])
    index = jax.vmap(lambda key, w: systematic(key, w, num_chains))(
        keys, jnp.asarray(weights, jnp.result_type(float))
    )
    return jnp.minimum(index, num_chains - 1).reshape(shape)


def rate_from(beta: jax.Array, distortion: jax.Array, log_z: jax.Array) -> jax.Array:
    """Rate from the identity ``log Z = -beta D - R`` (Huang et al., Prop. 1)."""
    return -beta * distortion - log_z
