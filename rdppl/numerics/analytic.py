"""Closed form of the rate-distortion curve of a linear Gaussian decoder.

See docs/math.md §8.

``p(z) = N(0, I_k)``, ``x | z ~ N(W z + b, sigma^2 I_n)``. The tempered posterior is
Gaussian, so rate, distortion and ``log Z`` are exact at every ``beta``. Computed in
NumPy float64 with an SVD of ``W`` (Huang et al., App. B.1), for validating runs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["LinearGaussianRD", "linear_gaussian_rd", "linear_gaussian_log_marginal"]


class LinearGaussianRD(NamedTuple):
    """Exact curve, each array of shape ``(example, beta)`` (nats)."""

    rate: np.ndarray
    distortion: np.ndarray
    log_z: np.ndarray


def linear_gaussian_rd(
    W: ArrayLike,
    b: ArrayLike,
    sigma: float,
    x: ArrayLike,
    betas: ArrayLike,
    *,
    distortion: str = "nll",
) -> LinearGaussianRD:
    """Rate, distortion and ``log Z_beta(x)`` of a linear Gaussian decoder.

    Parameters
    ----------
    W
        Decoder weights, shape ``(n, k)``.
    b
        Decoder bias, shape ``(n,)``.
    sigma
        Observation noise standard deviation (used by ``"nll"`` only).
    x
        Examples, shape ``(examples, n)`` (or ``(n,)`` for one).
    betas
        Inverse temperatures, shape ``(num_betas,)``.
    distortion
        ``"nll"``: ``-log N(x; Wz + b, sigma^2 I)``; ``"squared_error"``:
        ``||x - Wz - b||^2``.

    Returns
    -------
    LinearGaussianRD
        ``rate``, ``distortion``, ``log_z`` with shape ``(examples, num_betas)``.
    """
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    betas = np.atleast_1d(np.asarray(betas, dtype=np.float64))
    if W.ndim != 2:
        raise ValueError(f"W must have shape (n, k), got {W.shape}")
    n, k = W.shape
    if b.shape != (n,):
        raise ValueError(f"b must have shape ({n},), got {b.shape}")
    if x.shape[-1] != n:
        raise ValueError(f"x must have trailing dimension {n}, got shape {x.shape}")
    if np.any(betas < 0):
        raise ValueError(f"betas must be non-negative, got {betas}")
    if distortion == "nll":
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        scale = 1.0 / (2.0 * sigma**2)
        constant = 0.5 * n * np.log(2.0 * np.pi * sigma**2)
    elif distortion == "squared_error":
        scale, constant = 1.0, 0.0
    else:
        raise ValueError(
            f"distortion must be 'nll' or 'squared_error', got {distortion!r}"
        )

    # W = U diag(s) V^T: in the basis V, Lambda = I + 2 beta scale diag(s^2).
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    singular = np.zeros(k)
    singular[: s.size] = s
    r = x - b  # (examples, n)
    projected = r @ U  # (examples, r): coordinates of r in the column space of W
    residual_outside = np.sum(r**2, axis=-1) - np.sum(projected**2, axis=-1)

    precision = 1.0 + 2.0 * betas[:, None] * scale * singular[None, :] ** 2  # (B, k)
    # Posterior mean in the V basis: mu_j = 2 beta scale s_j (U^T r)_j / lambda_j.
    coefficient = (2.0 * betas[:, None] * scale * s[None, :]) / precision[:, : s.size]
    mu = coefficient[None, :, :] * projected[:, None, :]  # (examples, B, r)
    fit = projected[:, None, :] - s[None, None, :] * mu
    squared_error = residual_outside[:, None] + np.sum(fit**2, axis=-1)
    trace_term = np.sum(s[None, :] ** 2 / precision[:, : s.size], axis=-1)  # (B,)

    expected_error = squared_error + trace_term[None, :]
    distortion_value = scale * expected_error + constant
    rate = 0.5 * (
        np.sum(1.0 / precision, axis=-1)[None, :]
        + np.sum(mu**2, axis=-1)
        - k
        + np.sum(np.log(precision), axis=-1)[None, :]
    )
    log_z = -betas[None, :] * distortion_value - rate
    return LinearGaussianRD(rate=rate, distortion=distortion_value, log_z=log_z)


def linear_gaussian_log_marginal(
    W: ArrayLike, b: ArrayLike, sigma: float, x: ArrayLike
) -> np.ndarray:
    """``log N(x; b, W W^T + sigma^2 I)`` per example (the curve's value at beta=1)."""
    W = np.asarray(W, dtype=np.float64)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = W.shape[0]
    covariance = W @ W.T + sigma**2 * np.eye(n)
    r = x - np.asarray(b, dtype=np.float64)
    _, log_det = np.linalg.slogdet(covariance)
    quadratic = np.einsum("ei,ei->e", r, np.linalg.solve(covariance, r.T).T)
    return -0.5 * (quadratic + log_det + n * np.log(2.0 * np.pi))
