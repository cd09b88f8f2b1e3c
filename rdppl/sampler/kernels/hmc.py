"""Hamiltonian Monte Carlo with a fixed trajectory length, and Hamiltonian AIS."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rdppl.sampler.kernels.base import (
    LogDensity,
    MCMCKernel,
    TransitionInfo,
    check_in_interval,
    check_integer,
    check_positive_finite,
    transition_info,
)

__all__ = ["HMC"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class HMC(MCMCKernel):
    """Hamiltonian Monte Carlo with a fixed number of leapfrog steps (BlackJAX).

    With ``persistence > 0`` this is Hamiltonian AIS (Sohl-Dickstein & Culpepper,
    2012; docs/math.md §3.5): every chain carries its momentum across temperatures.
    Before each transition the momentum is partially refreshed, ``p <- a p +
    sqrt(1 - a**2) xi``; a rejected proposal negates it. The momentum is part of the
    extended target (standard normal once whitened by the mass matrix), so the AIS
    weights are unchanged and exact.

    Parameters
    ----------
    num_leapfrog
        Leapfrog steps per transition (the reference uses 10-20).
    divergence_threshold
        Energy error above which a transition is counted as divergent.
    persistence
        Momentum persistence ``a`` in ``[0, 1)``; 0 draws a fresh momentum at every
        transition (plain HMC).
    step_size_jitter
        Each transition multiplies its step size by a uniform factor in ``[1 - j,
        1 + j]`` (``j`` in ``[0, 1)``), which breaks periodic trajectories.
    step_size, target_acceptance, adapt_step_size, step_size_bounds,
    acceptance_smoothing, adaptation_rate, mass_matrix, mass_matrix_smoothing
        As for :class:`MCMCKernel`; the target acceptance defaults to 0.65.
    """

    num_leapfrog: int = 20
    divergence_threshold: float = 1000.0
    persistence: float = 0.0
    step_size_jitter: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_integer(self.num_leapfrog, "num_leapfrog", 1)
        check_positive_finite(self.divergence_threshold, "divergence_threshold")
        for name in ("persistence", "step_size_jitter"):
            check_in_interval(getattr(self, name), name, 0, 1, closed_low=True)

    def blackjax_step(self) -> Callable[..., tuple[Any, Any]]:
        """BlackJAX's HMC step."""
        from blackjax.mcmc import hmc

        return hmc.build_kernel(divergence_threshold=self.divergence_threshold)

    def parameters(
        self, position: jax.Array, inverse_mass_matrix: jax.Array
    ) -> dict[str, Any]:
        """The inverse mass matrix and the number of leapfrog steps."""
        return {
            "inverse_mass_matrix": self.full_inverse_mass_matrix(
                position, inverse_mass_matrix
            ),
            "num_integration_steps": self.num_leapfrog,
        }

    def gradient_evaluations(self, info: Any) -> jax.Array:
        """One gradient per leapfrog step."""
        return jnp.asarray(self.num_leapfrog, jnp.int32)

    def transition(
        self,
        rng_key: jax.Array,
        position: jax.Array,
        momentum: jax.Array,
        logdensity: jax.Array,
        logdensity_grad: jax.Array,
        logdensity_fn: LogDensity,
        step_size: jax.Array,
        inverse_mass_matrix: jax.Array,
    ) -> tuple[jax.Array, jax.Array, TransitionInfo]:
        """HMC, or with ``persistence > 0`` the momentum-carrying HAIS move."""
        jitter_key, rng_key = jax.random.split(rng_key)
        if self.step_size_jitter:
            step_size = step_size * jax.random.uniform(
                jitter_key,
                dtype=position.dtype,
                minval=1.0 - self.step_size_jitter,
                maxval=1.0 + self.step_size_jitter,
            )
        if not self.persistence:
            return super().transition(
                rng_key,
                position,
                momentum,
                logdensity,
                logdensity_grad,
                logdensity_fn,
                step_size,
                inverse_mass_matrix,
            )
        from blackjax.mcmc import hmc, integrators, metrics

        covariance = self.full_inverse_mass_matrix(position, inverse_mass_matrix)
        refresh_key, accept_key = jax.random.split(rng_key)
        noise = jax.random.normal(refresh_key, momentum.shape, momentum.dtype)
        whitened = (
            self.persistence * momentum + jnp.sqrt(1.0 - self.persistence**2) * noise
        )
        metric = metrics.default_metric(covariance)
        proposal = hmc.hmc_proposal(
            integrators.velocity_verlet(logdensity_fn, metric.kinetic_energy),
            metric.kinetic_energy,
            step_size,
            self.num_leapfrog,
            self.divergence_threshold,
        )
        # p = M^{1/2} q and back, with M = covariance^{-1} = (L L^T)^{-1}
        if covariance.ndim == 1:
            to_momentum = lambda q: q / jnp.sqrt(covariance)  # noqa: E731
            to_whitened = lambda p: p * jnp.sqrt(covariance)  # noqa: E731
        else:
            cholesky = jnp.linalg.cholesky(covariance)
            to_momentum = lambda q: jax.scipy.linalg.solve_triangular(  # noqa: E731
                cholesky, q, lower=True, trans="T"
            )
            to_whitened = lambda p: cholesky.T @ p  # noqa: E731
        start = integrators.IntegratorState(
            position, to_momentum(whitened), logdensity, logdensity_grad
        )
        # accepted: the end point with its momentum flipped by the proposal, flipped
        # back (the trajectory goes on); rejected: the start with its momentum negated
        new_state, info, _ = proposal(accept_key, start)
        new_state = hmc.flip_momentum(new_state)
        return (
            new_state.position,
            to_whitened(new_state.momentum),
            transition_info(self, info, position),
        )
