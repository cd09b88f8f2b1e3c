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

__all__ = [
    "TemperatureEstimates",
    "effective_sample_size",
    "log_mean_exp",
    "normalized_weights",
    "rate_from",
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
    """``log Zhat``, the weighted distortion, its variance and the ESS of the chains.

    The variance ``Var_beta[d] = -dD/dbeta`` measures how fast the tempered
    distribution changes with ``beta`` (docs/math.md §3.1).
    """
    mean = weighted_mean(log_weights, distortion)
    return TemperatureEstimates(
        log_z=log_mean_exp(log_weights),
        distortion=mean,
        distortion_variance=weighted_mean(log_weights, jnp.square(distortion - mean)),
        effective_sample_size=effective_sample_size(log_weights),
        num_nonfinite=num_nonfinite,
    )


def rate_from(beta: jax.Array, distortion: jax.Array, log_z: jax.Array) -> jax.Array:
    """Rate from the identity ``log Z = -beta D - R`` (Huang et al., Prop. 1)."""
    return -beta * distortion - log_z
