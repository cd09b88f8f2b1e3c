"""MCMC moves on a tempered density, built on BlackJAX, and step-size adaptation.

A kernel here is a small frozen configuration object (hashable, so it can be a static
argument of a compiled function). Its :meth:`transition` takes the log density of the
*current* temperature at every call, together with that density's value and gradient
at the starting point, which the AIS loop recomputes after each temperature change: a
cached log density never crosses a temperature change.

Step sizes follow the reference protocol of Huang et al. (2020, App. C.3): during a
*preliminary* run the step size of each example is multiplied by ``1.02`` after a
transition whose running (exponentially averaged) acceptance rate, averaged over that
example's chains, exceeds the target, and by ``0.98`` otherwise, clipped to
``step_size_bounds``; the step size used at every temperature is recorded and replayed,
frozen, by the formal run (:func:`adapt_step_size`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp

__all__ = ["HMC", "NUTS", "TransitionInfo", "adapt_step_size"]

LogDensity = Callable[[jax.Array], jax.Array]


class TransitionInfo(NamedTuple):
    """Diagnostics of one transition of one chain (data, never exceptions)."""

    acceptance_rate: jax.Array
    is_divergent: jax.Array
    num_gradient_evaluations: jax.Array


@dataclasses.dataclass(frozen=True)
class _StepSizeSettings:
    step_size: float = 0.05
    target_acceptance: float = 0.65
    adapt_step_size: bool = True
    step_size_bounds: tuple[float, float] = (1e-4, 0.5)
    acceptance_smoothing: float = 0.9
    divergence_threshold: float = 1000.0

    def __post_init__(self) -> None:
        low, high = self.step_size_bounds
        if not 0 < low <= high:
            raise ValueError(
                f"step_size_bounds must satisfy 0 < low <= high, got "
                f"{self.step_size_bounds!r}"
            )
        if not self.step_size > 0:
            raise ValueError(f"step_size must be positive, got {self.step_size!r}")
        if not 0 < self.target_acceptance < 1:
            raise ValueError(
                f"target_acceptance must lie in (0, 1), got {self.target_acceptance!r}"
            )
        if not 0 <= self.acceptance_smoothing < 1:
            raise ValueError(
                "acceptance_smoothing must lie in [0, 1), got "
                f"{self.acceptance_smoothing!r}"
            )


@dataclasses.dataclass(frozen=True)
class HMC(_StepSizeSettings):
    """Hamiltonian Monte Carlo with a fixed number of leapfrog steps.

    Parameters
    ----------
    num_leapfrog
        Leapfrog steps per transition (the reference uses 10-20).
    step_size
        Initial step size of the preliminary run, or the fixed step size when
        ``adapt_step_size=False``.
    target_acceptance
        Target acceptance rate of the step-size adaptation (0.65 in the reference).
    adapt_step_size
        Run the preliminary adaptation run and replay its step sizes (default).
        With ``False`` a single run uses ``step_size`` at every temperature.
    step_size_bounds
        Clipping range of the adapted step size.
    acceptance_smoothing
        Weight of the past in the running acceptance rate that drives adaptation.
    divergence_threshold
        Energy error above which a transition is counted as divergent.
    """

    num_leapfrog: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.num_leapfrog) != self.num_leapfrog or self.num_leapfrog < 1:
            raise ValueError(
                f"num_leapfrog must be a positive integer, got {self.num_leapfrog!r}"
            )

    def transition(
        self,
        rng_key: jax.Array,
        position: jax.Array,
        logdensity: jax.Array,
        logdensity_grad: jax.Array,
        logdensity_fn: LogDensity,
        step_size: jax.Array,
    ) -> tuple[jax.Array, TransitionInfo]:
        """Move one chain with a kernel that leaves ``exp(logdensity_fn)`` invariant."""
        kernel = blackjax.mcmc.hmc.build_kernel(
            divergence_threshold=self.divergence_threshold
        )
        state = blackjax.mcmc.hmc.HMCState(position, logdensity, logdensity_grad)
        new_state, info = kernel(
            rng_key,
            state,
            logdensity_fn,
            step_size,
            jnp.ones_like(position),
            self.num_leapfrog,
        )
        return new_state.position, TransitionInfo(
            info.acceptance_rate,
            info.is_divergent,
            jnp.asarray(self.num_leapfrog, jnp.int32),
        )


@dataclasses.dataclass(frozen=True)
class NUTS(_StepSizeSettings):
    """The No-U-Turn sampler (BlackJAX's multinomial, iterative version).

    Parameters
    ----------
    max_num_doublings
        Largest number of trajectory doublings per transition.
    step_size, target_acceptance, adapt_step_size, step_size_bounds,
    acceptance_smoothing, divergence_threshold
        As for :class:`HMC`; NUTS's target acceptance defaults to 0.8.

    Notes
    -----
    Under ``vmap`` all chains advance in lock step, so a transition costs as much as
    the longest trajectory among the chains; the recorded gradient count is the sum
    of the chains' own trajectory lengths.
    """

    target_acceptance: float = 0.8
    max_num_doublings: int = 6

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.max_num_doublings) != self.max_num_doublings or not (
            1 <= self.max_num_doublings <= 15
        ):
            raise ValueError(
                "max_num_doublings must be an integer in [1, 15], got "
                f"{self.max_num_doublings!r}"
            )

    def transition(
        self,
        rng_key: jax.Array,
        position: jax.Array,
        logdensity: jax.Array,
        logdensity_grad: jax.Array,
        logdensity_fn: LogDensity,
        step_size: jax.Array,
    ) -> tuple[jax.Array, TransitionInfo]:
        """Move one chain with a kernel that leaves ``exp(logdensity_fn)`` invariant."""
        kernel = blackjax.mcmc.nuts.build_kernel(
            divergence_threshold=self.divergence_threshold
        )
        state = blackjax.mcmc.hmc.HMCState(position, logdensity, logdensity_grad)
        new_state, info = kernel(
            rng_key,
            state,
            logdensity_fn,
            step_size,
            jnp.ones_like(position),
            self.max_num_doublings,
        )
        return new_state.position, TransitionInfo(
            info.acceptance_rate,
            info.is_divergent,
            jnp.asarray(info.num_integration_steps, jnp.int32),
        )


Kernel = HMC | NUTS


def adapt_step_size(
    kernel: Kernel,
    step_size: jax.Array,
    running_acceptance: jax.Array,
    acceptance_rate: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """One multiplicative step-size update of the preliminary run.

    Parameters
    ----------
    kernel
        Provides the target, the smoothing and the bounds.
    step_size
        Current step size of one example.
    running_acceptance
        Exponentially averaged acceptance rate so far.
    acceptance_rate
        Mean acceptance rate of the example's chains in the latest transition.

    Returns
    -------
    step_size, running_acceptance
        Updated values.
    """
    smoothing = kernel.acceptance_smoothing
    running = smoothing * running_acceptance + (1.0 - smoothing) * acceptance_rate
    factor = jnp.where(running > kernel.target_acceptance, 1.02, 0.98)
    low, high = kernel.step_size_bounds
    return jnp.clip(step_size * factor, low, high), running
