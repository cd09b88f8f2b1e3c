"""What the preliminary run adapts, as ``(init, update)`` pairs.

Only the preliminary run adapts; the reported run replays the recorded values, frozen
(docs/math.md §3.3), so its estimates stay unbiased. Everything here acts on one
example's chains; the caller maps them over examples.

- :func:`step_size_adaptation` drives the step size towards a target acceptance rate,
  in log space, proportionally to the error of a running acceptance rate.
- :func:`mass_matrix_adaptation` tracks the tempered posterior's variance across
  chains, as the inverse mass matrix of the next transition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "MASS_MATRICES",
    "MassMatrixAdaptation",
    "StepSizeAdaptation",
    "StepSizeState",
    "mass_matrix_adaptation",
    "step_size_adaptation",
    "weighted_covariance",
]

MASS_MATRICES = ("identity", "diagonal", "dense")


class StepSizeState(NamedTuple):
    """Step size of one example and the running acceptance rate that drives it."""

    step_size: jax.Array
    running_acceptance: jax.Array


class StepSizeAdaptation(NamedTuple):
    """An ``(init, update)`` pair, used only by the preliminary run.

    ``init(step_size) -> StepSizeState`` and
    ``update(state, acceptance_rate) -> StepSizeState``.
    """

    init: Callable[[jax.Array], StepSizeState]
    update: Callable[[StepSizeState, jax.Array], StepSizeState]


def step_size_adaptation(
    *,
    target_acceptance: float,
    smoothing: float,
    bounds: tuple[float, float],
    rate: float = 1.0,
) -> StepSizeAdaptation:
    """Proportional control of the log step size (docs/math.md §3.3).

    After each transition the running acceptance ``a <- s a + (1 - s) alpha`` is
    updated with the mean acceptance ``alpha`` of the example's live chains, and
    ``log eps <- log eps + rate * (min(a, alpha) - target)``, clipped to
    ``bounds``: the step size grows with the smoothed acceptance but shrinks at
    once when the acceptance collapses. An
    acceptance of 1 against a target of 0.65 multiplies the step size by
    ``exp(0.35 rate)`` per temperature, so the step size settles within tens of
    temperatures whatever the schedule length; at the target it stays put, and
    acceptance noise moves it by ``rate`` times the noise. The running acceptance
    starts at the target.

    Parameters
    ----------
    target_acceptance
        Target acceptance rate.
    smoothing
        Weight ``s`` of the past in the running acceptance.
    bounds
        Clipping range ``(low, high)``.
    rate
        Gain of the log step size per unit of acceptance error.

    Returns
    -------
    StepSizeAdaptation
    """
    low, high = bounds

    def init(step_size: jax.Array) -> StepSizeState:
        step_size = jnp.asarray(step_size)
        return StepSizeState(step_size, jnp.asarray(target_acceptance, step_size.dtype))

    def update(state: StepSizeState, acceptance_rate: jax.Array) -> StepSizeState:
        running = (
            smoothing * state.running_acceptance + (1.0 - smoothing) * acceptance_rate
        )
        # a collapse of the acceptance acts at once (the running mean lags by
        # about 1 / (1 - s) temperatures, too long when the posterior sharpens fast)
        error = jnp.minimum(running, acceptance_rate) - target_acceptance
        log_step = jnp.log(state.step_size) + rate * error
        return StepSizeState(jnp.clip(jnp.exp(log_step), low, high), running)

    return StepSizeAdaptation(init, update)


def weighted_covariance(
    position: jax.Array, log_weight: jax.Array, *, dense: bool
) -> tuple[jax.Array, jax.Array]:
    """Weighted variance ``(dim,)`` or covariance ``(dim, dim)`` across chains.

    Chains with non-finite log weight get no weight. Returns the estimate and the
    importance effective sample size of the weights.
    """
    finite = jnp.isfinite(log_weight)
    shifted = jnp.where(
        finite, log_weight - jnp.max(jnp.where(finite, log_weight, -jnp.inf)), -jnp.inf
    )
    weight = jnp.where(finite, jnp.exp(shifted), 0.0)
    total = jnp.sum(weight)
    weight = weight / jnp.where(total > 0, total, 1.0)
    ess = jnp.where(total > 0, 1.0 / jnp.sum(weight**2), 0.0)
    position = jnp.where(finite[:, None], position, 0.0)
    mean = weight @ position
    centred = position - mean[None, :]
    if dense:
        return (weight[:, None] * centred).T @ centred, ess
    return weight @ centred**2, ess


class MassMatrixAdaptation(NamedTuple):
    """An ``(init, update)`` pair for the inverse mass matrix.

    ``init(position) -> inverse_mass_matrix`` (from the starting ensemble, equal
    weights) and ``update(inverse_mass_matrix, position, log_weight) ->
    inverse_mass_matrix``.
    """

    init: Callable[[jax.Array], jax.Array]
    update: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def mass_matrix_adaptation(
    kind: str, *, smoothing: float = 0.9, regularization: float = 1e-3
) -> MassMatrixAdaptation:
    """Track the tempered posterior's covariance as the inverse mass matrix.

    ``kind`` is ``"identity"`` (a vector of ones, never updated), ``"diagonal"``
    (the variance across chains) or ``"dense"`` (the covariance). After each
    temperature the estimate moves towards the live chains' (equally weighted:
    after a transition they are close to the tempered posterior, while the
    importance weights often sit on a few chains) by a gain ``1 - smoothing``;
    fewer than two live chains change nothing. Diagonal estimates move in log
    space (the variance shrinks by orders of magnitude along the path), dense ones
    linearly; the
    covariance is shrunk towards its diagonal by ``regularization`` so that it stays
    positive definite with fewer chains than dimensions (docs/math.md §3.4).

    Parameters
    ----------
    kind
        ``"identity"``, ``"diagonal"`` or ``"dense"``.
    smoothing
        Weight of the past estimate at each temperature.
    regularization
        Relative shrinkage of a dense estimate towards its diagonal.

    Returns
    -------
    MassMatrixAdaptation
    """
    if kind not in MASS_MATRICES:
        raise ValueError(f"mass_matrix must be one of {MASS_MATRICES}, got {kind!r}")
    dense = kind == "dense"
    tiny = jnp.finfo(jnp.result_type(float)).tiny

    def shrink(covariance: jax.Array) -> jax.Array:
        diagonal = jnp.diag(jnp.diag(covariance))
        return (1.0 - regularization) * covariance + regularization * diagonal

    def init(position: jax.Array) -> jax.Array:
        if kind == "identity":  # a placeholder: kernels use ones of their own
            return jnp.ones((1,), position.dtype)
        estimate, _ = weighted_covariance(
            position, jnp.zeros(position.shape[:-1], position.dtype), dense=dense
        )
        if dense:
            estimate = shrink(estimate)
            return jnp.where(
                jnp.all(jnp.isfinite(estimate)) & (jnp.min(jnp.diag(estimate)) > 0),
                estimate,
                jnp.eye(position.shape[-1], dtype=position.dtype),
            )
        return jnp.where(
            jnp.isfinite(estimate) & (estimate > tiny),
            estimate,
            jnp.ones_like(estimate),
        )

    def update(
        inverse_mass_matrix: jax.Array, position: jax.Array, log_weight: jax.Array
    ) -> jax.Array:
        if kind == "identity":
            return inverse_mass_matrix
        # the chains' spread, live chains equally weighted: after a transition
        # they are close to pi_beta, and the importance weights (often
        # concentrated on a few chains) would make the estimate degenerate
        live = jnp.where(jnp.isfinite(log_weight), 0.0, -jnp.inf)
        estimate, ess = weighted_covariance(position, live, dense=dense)
        gain = jnp.where(ess >= 2.0, 1.0 - smoothing, 0.0)
        if dense:
            updated = shrink(
                inverse_mass_matrix + gain * (estimate - inverse_mass_matrix)
            )
            usable = jnp.all(jnp.isfinite(updated)) & (jnp.min(jnp.diag(updated)) > 0)
            return jnp.where(usable, updated, inverse_mass_matrix)
        usable = jnp.isfinite(estimate) & (estimate > tiny)
        log_updated = jnp.log(inverse_mass_matrix) + gain * (
            jnp.log(jnp.where(usable, estimate, 1.0)) - jnp.log(inverse_mass_matrix)
        )
        return jnp.where(usable, jnp.exp(log_updated), inverse_mass_matrix)

    return MassMatrixAdaptation(init, update)
