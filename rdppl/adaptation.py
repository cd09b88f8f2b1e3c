"""Step-size adaptation for the preliminary run, as an ``(init, update)`` pair.

Only the preliminary run adapts; the reported run replays the recorded step sizes,
frozen (docs/math.md §3), so its estimates stay unbiased.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["StepSizeAdaptation", "StepSizeState", "step_size_adaptation"]


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
    grow: float = 1.02,
    shrink: float = 0.98,
) -> StepSizeAdaptation:
    """The multiplicative rule of Huang et al. (docs/math.md §3).

    After each transition the running acceptance ``a <- s a + (1 - s) alpha`` is
    updated with the mean acceptance ``alpha`` of the example's chains; the step size
    is multiplied by ``grow`` when ``a`` exceeds the target and by ``shrink``
    otherwise, then clipped to ``bounds``. The running acceptance starts at the
    target, so the first transitions do not all shrink the step size.

    Parameters
    ----------
    target_acceptance
        Target acceptance rate.
    smoothing
        Weight ``s`` of the past in the running acceptance.
    bounds
        Clipping range ``(low, high)``.
    grow, shrink
        Multiplicative factors (1.02 and 0.98 in the reference).

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
        scale = jnp.where(running > target_acceptance, grow, shrink)
        return StepSizeState(jnp.clip(state.step_size * scale, low, high), running)

    return StepSizeAdaptation(init, update)
