"""MCMC moves for AIS: any BlackJAX kernel, with HMC and NUTS as named defaults.

A kernel here is a small frozen configuration (hashable, so it is a static argument of
compiled functions) around a BlackJAX step with the usual signature
``step(rng_key, state, logdensity_fn, step_size, **parameters) -> (state, info)``.
The AIS loop recomputes the log density and its gradient after each temperature
change and builds the BlackJAX state from them (:meth:`MCMCKernel.transition`), so a
cached log density never crosses a temperature change.

BlackJAX (which imports Optax) is imported when a kernel is first built, not when
rdppl is imported. Step sizes follow Huang et al. (2020, App. C.3; docs/math.md §3):
a preliminary run adapts a step size per example with the ``(init, update)`` pair of
:func:`rdppl.adaptation.step_size_adaptation` and records it at every temperature;
the reported run replays the recorded values, frozen.
"""

from __future__ import annotations

import abc
import dataclasses
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rdppl.adaptation import (
    MASS_MATRICES,
    MassMatrixAdaptation,
    StepSizeAdaptation,
    mass_matrix_adaptation,
    step_size_adaptation,
)

__all__ = ["HMC", "NUTS", "BlackJAXKernel", "MCMCKernel", "TransitionInfo"]

LogDensity = Callable[[jax.Array], jax.Array]


class TransitionInfo(NamedTuple):
    """Diagnostics of one transition of one chain (data, never exceptions)."""

    acceptance_rate: jax.Array
    is_divergent: jax.Array
    num_gradient_evaluations: jax.Array


def _check_positive_finite(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    if not value < float("inf"):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _check_in_interval(
    value: Any, name: str, low: float, high: float, *, closed_low: bool
) -> None:
    """A real number in ``[low, high)`` (``closed_low``) or ``(low, high)``."""
    interval = f"{'[' if closed_low else '('}{low}, {high})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in {interval}, got {value!r}")
    inside = (low <= value if closed_low else low < value) and value < high
    if not inside:
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")


def _check_integer(value: Any, name: str, low: int, high: int | None = None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
        or (high is not None and value > high)
    ):
        if high is not None:
            kind = f"an integer in [{low}, {high}]"
        else:
            kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MCMCKernel(abc.ABC):
    """Step-size settings shared by every kernel, and the generic AIS transition.

    Parameters
    ----------
    step_size
        Initial step size of the preliminary run, or the fixed step size when
        ``adapt_step_size=False``.
    target_acceptance
        Target acceptance rate of the step-size adaptation.
    adapt_step_size
        Run the preliminary adaptation run and replay its step sizes (default).
        With ``False`` a single run uses ``step_size`` at every temperature.
    step_size_bounds
        Clipping range of the adapted step size.
    acceptance_smoothing
        Weight of the past in the running acceptance rate that drives adaptation.
    adaptation_rate
        Gain of the log step size per unit of acceptance error
        (:func:`rdppl.adaptation.step_size_adaptation`).
    mass_matrix
        Preconditioning: ``"identity"``, ``"diagonal"`` or ``"dense"``. Other than
        the identity, the preliminary run tracks the tempered posterior's weighted
        (co)variance across chains (:func:`rdppl.adaptation.mass_matrix_adaptation`)
        and records it at every temperature; the reported run replays it frozen as
        the inverse mass matrix. Dense costs ``dim**2`` per example and temperature
        to record: meant for a few tens of latent dimensions.
    mass_matrix_smoothing
        Weight of the past estimate at each temperature.
    """

    step_size: float = 0.05
    target_acceptance: float = 0.65
    adapt_step_size: bool = True
    step_size_bounds: tuple[float, float] = (1e-4, 0.5)
    acceptance_smoothing: float = 0.9
    adaptation_rate: float = 1.0
    mass_matrix: str = "identity"
    mass_matrix_smoothing: float = 0.9

    def __post_init__(self) -> None:
        _check_positive_finite(self.step_size, "step_size")
        bounds = self.step_size_bounds
        message = (
            "step_size_bounds must be a pair (low, high) of numbers with "
            f"0 < low <= high < inf, got {bounds!r}"
        )
        if isinstance(bounds, str | bytes) or not isinstance(bounds, Sequence):
            raise TypeError(message)
        if len(bounds) != 2 or not all(
            isinstance(b, numbers.Real) and not isinstance(b, bool) for b in bounds
        ):
            raise TypeError(message)
        low, high = bounds
        if not 0 < low <= high < float("inf"):
            raise ValueError(message)
        # a tuple of floats: kernels are hashable (static arguments of compiled code)
        object.__setattr__(self, "step_size_bounds", (float(low), float(high)))
        _check_in_interval(
            self.target_acceptance, "target_acceptance", 0, 1, closed_low=False
        )
        _check_in_interval(
            self.acceptance_smoothing, "acceptance_smoothing", 0, 1, closed_low=True
        )
        if not isinstance(self.adapt_step_size, bool):
            raise TypeError(
                f"adapt_step_size must be True or False, got {self.adapt_step_size!r}"
            )
        _check_positive_finite(self.adaptation_rate, "adaptation_rate")
        if not isinstance(self.mass_matrix, str) or (
            self.mass_matrix not in MASS_MATRICES
        ):
            raise ValueError(
                f"mass_matrix must be one of {MASS_MATRICES}, got {self.mass_matrix!r}"
            )
        _check_in_interval(
            self.mass_matrix_smoothing, "mass_matrix_smoothing", 0, 1, closed_low=True
        )
        if self.mass_matrix != "identity" and not self.adapt_step_size:
            raise ValueError(
                f"mass_matrix={self.mass_matrix!r} is estimated by the preliminary "
                "run, which adapt_step_size=False turns off; use "
                "mass_matrix='identity' or adapt_step_size=True"
            )

    # -- what a concrete kernel provides ---------------------------------------
    @abc.abstractmethod
    def blackjax_step(self) -> Callable[..., tuple[Any, Any]]:
        """The BlackJAX step ``(rng_key, state, logdensity_fn, step_size, **p)``."""

    def blackjax_init(self) -> Callable[..., Any]:
        """BlackJAX's ``init(position, logdensity_fn)`` that defines the state type."""
        from blackjax.mcmc import hmc

        return hmc.init

    def parameters(
        self, position: jax.Array, inverse_mass_matrix: jax.Array
    ) -> dict[str, Any]:
        """Extra keyword parameters of the step at a position (besides step size)."""
        return {}

    def inverse_mass_matrix_shape(self, dim: int) -> tuple[int, ...]:
        """Shape of the recorded inverse mass matrix of one example (``(1,)``: none)."""
        return {"identity": (1,), "diagonal": (dim,), "dense": (dim, dim)}[
            self.mass_matrix
        ]

    def full_inverse_mass_matrix(
        self, position: jax.Array, inverse_mass_matrix: jax.Array
    ) -> jax.Array:
        """The inverse mass matrix BlackJAX gets (ones for the identity)."""
        if self.mass_matrix == "identity":
            return jnp.ones_like(position)
        return inverse_mass_matrix

    def gradient_evaluations(self, info: Any) -> jax.Array:
        """Gradient evaluations of one transition, from the BlackJAX info."""
        return jnp.asarray(1, jnp.int32)

    # -- the generic transition --------------------------------------------------
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
        """Move one chain with a kernel that leaves ``exp(logdensity_fn)`` invariant.

        ``logdensity`` and ``logdensity_grad`` are the value and gradient of
        ``logdensity_fn`` at ``position`` (computed by the caller at the current
        temperature). ``momentum`` is the chain's whitened momentum (standard normal
        under the extended target); kernels that do not carry momentum return it
        unchanged.
        """
        known = {
            "position": position,
            "logdensity": logdensity,
            "logdensity_grad": logdensity_grad,
        }
        init = self.blackjax_init()
        template = jax.eval_shape(lambda u: init(u, logdensity_fn), position)
        if set(template._fields) <= set(known):
            # BlackJAX's state from the value and gradient already computed
            state = type(template)(**{name: known[name] for name in template._fields})
        else:  # a state with more fields: let BlackJAX build it
            state = init(position, logdensity_fn)
        new_state, info = self.blackjax_step()(
            rng_key,
            state,
            logdensity_fn,
            step_size,
            **self.parameters(position, inverse_mass_matrix),
        )
        return new_state.position, momentum, _transition_info(self, info, position)

    def step_size_adaptation(self) -> StepSizeAdaptation:
        """The preliminary run's step-size ``(init, update)`` for these settings."""
        return step_size_adaptation(
            target_acceptance=self.target_acceptance,
            smoothing=self.acceptance_smoothing,
            bounds=self.step_size_bounds,
            rate=self.adaptation_rate,
        )

    def mass_matrix_adaptation(self) -> MassMatrixAdaptation:
        """The preliminary run's mass-matrix ``(init, update)`` for these settings."""
        return mass_matrix_adaptation(
            self.mass_matrix, smoothing=self.mass_matrix_smoothing
        )


def _transition_info(
    kernel: MCMCKernel, info: Any, position: jax.Array
) -> TransitionInfo:
    return TransitionInfo(
        jnp.asarray(info.acceptance_rate, position.dtype),
        jnp.asarray(getattr(info, "is_divergent", False), bool),
        jnp.asarray(kernel.gradient_evaluations(info), jnp.int32),
    )


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
        _check_integer(self.num_leapfrog, "num_leapfrog", 1)
        _check_positive_finite(self.divergence_threshold, "divergence_threshold")
        for name in ("persistence", "step_size_jitter"):
            _check_in_interval(getattr(self, name), name, 0, 1, closed_low=True)

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
            _transition_info(self, info, position),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class NUTS(MCMCKernel):
    """The No-U-Turn sampler (BlackJAX's multinomial, iterative version).

    Parameters
    ----------
    max_num_doublings
        Largest number of trajectory doublings per transition.
    divergence_threshold
        Energy error above which a transition is counted as divergent.
    step_size, target_acceptance, adapt_step_size, step_size_bounds,
    acceptance_smoothing, adaptation_rate, mass_matrix, mass_matrix_smoothing
        As for :class:`MCMCKernel`; NUTS's target acceptance defaults to 0.8.

    Notes
    -----
    Under ``vmap`` all chains advance in lock step, so a transition costs as much as
    the longest trajectory among the chains; the recorded gradient count is the sum
    of the chains' own trajectory lengths.
    """

    target_acceptance: float = 0.8
    max_num_doublings: int = 6
    divergence_threshold: float = 1000.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_integer(self.max_num_doublings, "max_num_doublings", 1, 15)
        _check_positive_finite(self.divergence_threshold, "divergence_threshold")

    def blackjax_step(self) -> Callable[..., tuple[Any, Any]]:
        """BlackJAX's NUTS step."""
        from blackjax.mcmc import nuts

        return nuts.build_kernel(divergence_threshold=self.divergence_threshold)

    def parameters(
        self, position: jax.Array, inverse_mass_matrix: jax.Array
    ) -> dict[str, Any]:
        """The inverse mass matrix and the doubling limit."""
        return {
            "inverse_mass_matrix": self.full_inverse_mass_matrix(
                position, inverse_mass_matrix
            ),
            "max_num_doublings": self.max_num_doublings,
        }

    def gradient_evaluations(self, info: Any) -> jax.Array:
        """The trajectory's number of integration steps."""
        return jnp.asarray(info.num_integration_steps, jnp.int32)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BlackJAXKernel(MCMCKernel):
    """Any BlackJAX kernel with the step signature ``(key, state, fn, step_size, **p)``.

    The state passed to ``step`` is built by ``init`` (its type) from the value and
    gradient the AIS loop has already computed when its fields are among
    ``position``, ``logdensity`` and ``logdensity_grad`` (MALA, HMC, random walk);
    otherwise ``init(position, logdensity_fn)`` builds it. The info ``step`` returns
    must have ``acceptance_rate`` (and may have ``is_divergent``).

    Parameters
    ----------
    step
        The BlackJAX step, e.g. ``blackjax.mcmc.mala.build_kernel()``.
    init
        The matching BlackJAX ``init``, e.g. ``blackjax.mcmc.mala.init``.
    parameters_
        Extra keyword parameters of the step as ``(name, value)`` pairs of
        hashable values.
    gradient_evaluations_per_step
        Gradient evaluations one transition costs (1 for MALA).
    step_size, target_acceptance, adapt_step_size, step_size_bounds,
    acceptance_smoothing, adaptation_rate, mass_matrix, mass_matrix_smoothing
        As for :class:`MCMCKernel`. With a ``mass_matrix`` other than the identity
        the step also gets ``inverse_mass_matrix=`` (a vector, or a matrix for
        ``"dense"``), as BlackJAX's HMC-family steps take it.

    Examples
    --------
    >>> import blackjax, rdppl
    >>> mala = rdppl.BlackJAXKernel(
    ...     step=blackjax.mcmc.mala.build_kernel(),
    ...     init=blackjax.mcmc.mala.init,
    ...     target_acceptance=0.57,
    ... )
    """

    step: Callable[..., tuple[Any, Any]]
    init: Callable[..., Any]
    parameters_: tuple[tuple[str, Any], ...] = ()
    gradient_evaluations_per_step: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not callable(self.step):
            raise TypeError(f"step must be a BlackJAX step function, got {self.step!r}")
        if not callable(self.init):
            raise TypeError(f"init must be a BlackJAX init function, got {self.init!r}")
        _check_integer(
            self.gradient_evaluations_per_step, "gradient_evaluations_per_step", 0
        )
        parameters = self.parameters_
        if not isinstance(parameters, tuple) or not all(
            isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
            for p in parameters
        ):
            raise TypeError(
                "parameters_ must be a tuple of (name, value) pairs, got "
                f"{parameters!r}"
            )
        for name, value in parameters:
            try:
                hash(value)
            except TypeError as error:
                raise TypeError(
                    f"parameters_ value of {name!r} must be hashable (a number, "
                    f"string or tuple; kernels are static arguments of compiled "
                    f"code), got {value!r}"
                ) from error

    def blackjax_step(self) -> Callable[..., tuple[Any, Any]]:
        """The wrapped step."""
        return self.step

    def blackjax_init(self) -> Callable[..., Any]:
        """The wrapped init."""
        return self.init

    def parameters(
        self, position: jax.Array, inverse_mass_matrix: jax.Array
    ) -> dict[str, Any]:
        """The fixed extra parameters, and ``inverse_mass_matrix`` unless identity."""
        parameters = dict(self.parameters_)
        if self.mass_matrix != "identity":
            parameters["inverse_mass_matrix"] = inverse_mass_matrix
        return parameters

    def gradient_evaluations(self, info: Any) -> jax.Array:
        """The declared cost per transition."""
        return jnp.asarray(self.gradient_evaluations_per_step, jnp.int32)
