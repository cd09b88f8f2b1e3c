"""Hamiltonian Monte Carlo with a fixed trajectory length, and Hamiltonian AIS."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rdppl.sampler.kernels.base import (
    Evaluation,
    LogDensity,
    MCMCKernel,
    TransitionInfo,
    check_in_interval,
    check_integer,
    check_positive_finite,
)

__all__ = ["HMC", "default_kernel"]


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
    acceptance_drift
        ``delta`` in ``[0, 1)``: the uniform of each Metropolis test is not drawn
        afresh but carried by the chain (its acceptance level ``v``, uniform on
        ``[-1, 1)``, compared by magnitude) and moved by ``delta`` before each test,
        so rejections come in runs and the momentum is turned back less often (Neal,
        2020; docs/math.md §3.5). 0 draws it afresh, as does :meth:`transition`,
        which has no level to carry.
    metropolis
        ``False``: uncorrected Hamiltonian AIS. Every trajectory is kept, none is
        turned back, and its energy error joins the chain's AIS weight instead
        (``log w += H(start) - H(end)``), which keeps the estimate of ``Z``
        unbiased (docs/math.md §3.5).
    step_size, target_acceptance, adapt_step_size, step_size_bounds,
    acceptance_smoothing, adaptation_rate, mass_matrix, mass_matrix_smoothing
        As for :class:`MCMCKernel`; the target acceptance defaults to 0.65.
    """

    num_leapfrog: int = 20
    divergence_threshold: float = 1000.0
    persistence: float = 0.0
    step_size_jitter: float = 0.0
    acceptance_drift: float = 0.0
    metropolis: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_integer(self.num_leapfrog, "num_leapfrog", 1)
        check_positive_finite(self.divergence_threshold, "divergence_threshold")
        for name in ("persistence", "step_size_jitter", "acceptance_drift"):
            check_in_interval(getattr(self, name), name, 0, 1, closed_low=True)
        if not isinstance(self.metropolis, bool):
            raise TypeError(
                f"metropolis must be True or False, got {self.metropolis!r}"
            )

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

    def _jittered(self, rng_key: jax.Array, step_size: jax.Array) -> jax.Array:
        if not self.step_size_jitter:
            return step_size
        return step_size * jax.random.uniform(
            rng_key,
            dtype=jnp.result_type(step_size),
            minval=1.0 - self.step_size_jitter,
            maxval=1.0 + self.step_size_jitter,
        )

    def _refreshed(self, rng_key: jax.Array, momentum: jax.Array) -> jax.Array:
        """The whitened momentum partially refreshed (fresh without persistence)."""
        noise = jax.random.normal(rng_key, momentum.shape, momentum.dtype)
        if not self.persistence:
            return noise
        return self.persistence * momentum + jnp.sqrt(1.0 - self.persistence**2) * noise

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
        """HMC, or with any of the options above, :meth:`cached_transition`'s move.

        Plain HMC is BlackJAX's step. Otherwise the tempered log density stands for
        the "log prior" of :meth:`cached_transition` at ``beta = 0`` (there is no
        distortion apart); without an acceptance level the Metropolis tests draw
        their uniform afresh, and ``metropolis=False``'s weight term is in the info.
        """
        if not (self.persistence or self.acceptance_drift) and self.metropolis:
            jitter_key, rng_key = jax.random.split(rng_key)
            return super().transition(
                rng_key,
                position,
                momentum,
                logdensity,
                logdensity_grad,
                logdensity_fn,
                self._jittered(jitter_key, step_size),
                inverse_mass_matrix,
            )

        def evaluate(u: jax.Array) -> Evaluation:
            value, gradient = jax.value_and_grad(logdensity_fn)(u)
            return Evaluation(value, jnp.zeros_like(value), gradient, jnp.zeros_like(u))

        start = Evaluation(
            logdensity,
            jnp.zeros_like(logdensity),
            logdensity_grad,
            jnp.zeros_like(position),
        )
        position, momentum, _, info = self.cached_transition(
            rng_key, position, momentum, start, evaluate, 0.0, step_size,
            inverse_mass_matrix,
        )  # fmt: skip
        return position, momentum, info

    def tuning_kernel(self) -> HMC:
        """The same kernel with its Metropolis uniforms drawn afresh.

        A carried acceptance level leaves the fraction of accepted moves unchanged
        but puts them in runs, so one temperature's acceptance, over a few chains,
        says little about the step size; the preliminary run draws its uniforms
        afresh and reads it without that noise.
        """
        return dataclasses.replace(self, acceptance_drift=0.0)

    @property
    def caches_gradients(self) -> bool:
        """Yes: the leapfrog steps keep the prior's and the distortion's gradients."""
        return True

    def cached_transition(
        self,
        rng_key: jax.Array,
        position: jax.Array,
        momentum: jax.Array,
        evaluation: Any,
        evaluate: Callable[[jax.Array], Any],
        beta: jax.Array,
        step_size: jax.Array,
        inverse_mass_matrix: jax.Array,
        acceptance_level: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array, Any, TransitionInfo]:
        """The same move, integrated with the log prior's and distortion's gradients.

        Velocity Verlet on ``log p(u) - beta d(u)`` and the Metropolis-Hastings test
        as in BlackJAX's ``hmc_proposal``, but each leapfrog step keeps the two
        gradients apart (BlackJAX's integrator keeps only their tempered sum), so
        the end point's evaluation serves the next temperature as it is: one
        gradient evaluation per leapfrog step and none per temperature change
        (docs/math.md §3.5).
        """
        jitter_key, refresh_key, accept_key = jax.random.split(rng_key, 3)
        step_size = self._jittered(jitter_key, step_size)
        covariance = self.full_inverse_mass_matrix(position, inverse_mass_matrix)
        to_momentum, to_whitened = _whitening(covariance)

        def velocity(p: jax.Array) -> jax.Array:
            return covariance * p if covariance.ndim == 1 else covariance @ p

        def force(e: Any) -> jax.Array:
            return e.prior_grad - beta * e.distortion_grad

        def energy(e: Any, p: jax.Array) -> jax.Array:
            return beta * e.distortion - e.log_prior + 0.5 * jnp.dot(p, velocity(p))

        def leapfrog(_: Any, carry: tuple) -> tuple:
            u, p, e = carry
            p = p + 0.5 * step_size * force(e)
            u = u + step_size * velocity(p)
            e = evaluate(u)
            return u, p + 0.5 * step_size * force(e), e

        p0 = to_momentum(self._refreshed(refresh_key, momentum))
        end = jax.lax.fori_loop(
            0, self.num_leapfrog, leapfrog, (position, p0, evaluation)
        )
        log_ratio = energy(evaluation, p0) - energy(end[2], end[1])
        log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
        divergent = -log_ratio > self.divergence_threshold
        probability = jnp.minimum(1.0, jnp.exp(log_ratio))
        increment = level = None
        if self.metropolis and self.acceptance_drift and acceptance_level is not None:
            accept, level = _drifted_test(
                acceptance_level, self.acceptance_drift, log_ratio
            )
        elif self.metropolis:
            uniform = jax.random.uniform(accept_key, dtype=probability.dtype)
            accept = uniform < probability
        else:  # kept whatever its energy error, which the weight takes on
            accept = jnp.isfinite(log_ratio)
            increment = jnp.where(accept, log_ratio, -jnp.inf).astype(position.dtype)
        # accepted: the end point, going on; rejected: the start, turned back
        keep = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
        new_position = keep(end[0], position)
        new_momentum = keep(end[1], -p0)
        new_evaluation = jax.tree.map(keep, end[2], evaluation)
        info = TransitionInfo(
            probability.astype(position.dtype),
            divergent,
            jnp.asarray(self.num_leapfrog, jnp.int32),
            increment,
            level,
        )
        return new_position, to_whitened(new_momentum), new_evaluation, info


def _drifted_test(
    level: jax.Array, drift: float, log_ratio: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Neal's (2020) non-reversible Metropolis test: accept, and the new level.

    The level moves by ``drift`` on the circle ``[-1, 1)``; the proposal is accepted
    if ``|v| < exp(log_ratio)``, and then ``v`` is rescaled by ``exp(-log_ratio)``,
    which keeps ``(x, v)`` distributed as the target times a uniform.
    """
    level = level + drift
    level = jnp.where(level >= 1.0, level - 2.0, level)
    magnitude = jnp.log(jnp.abs(level))
    accept = magnitude < log_ratio
    rescaled = jnp.sign(level) * jnp.exp(magnitude - jnp.where(accept, log_ratio, 0.0))
    return accept, jnp.where(accept, rescaled, level).astype(level.dtype)


def _whitening(
    covariance: jax.Array,
) -> tuple[Callable[[jax.Array], jax.Array], Callable[[jax.Array], jax.Array]]:
    """``q -> p`` and back: ``p = M^{1/2} q``, ``M^{-1} = covariance = L L^T``."""
    if covariance.ndim == 1:
        return (lambda q: q / jnp.sqrt(covariance)), (
            lambda p: p * jnp.sqrt(covariance)
        )
    cholesky = jnp.linalg.cholesky(covariance)
    return (
        lambda q: jax.scipy.linalg.solve_triangular(cholesky, q, lower=True, trans="T")
    ), (lambda p: cholesky.T @ p)


def default_kernel() -> HMC:
    """The kernel of every AIS entry point when none is given.

    Hamiltonian AIS with one leapfrog step per temperature, momentum persistence 0.9
    and a carried acceptance level: ``HMC(num_leapfrog=1, persistence=0.9,
    acceptance_drift=0.05)``. With the gradients handed on from one temperature to
    the next (:meth:`HMC.cached_transition`) a temperature costs one gradient
    evaluation per chain, so a budget buys many temperatures; rejections come in
    runs, so the momentum persists in between. Of the kernels measured against
    BlackJAX's tempered SMC at equal gradient evaluations it was the most accurate,
    and the only one ahead in every cell (docs/benchmarks.md, "Second round").
    """
    return HMC(num_leapfrog=1, persistence=0.9, acceptance_drift=0.05)
