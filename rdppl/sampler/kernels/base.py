"""The kernel interface of AIS: :class:`MCMCKernel`, a frozen configuration.

:class:`MCMCKernel` holds the settings every kernel shares (step size, target
acceptance, adaptation, mass matrix) and builds one transition from a BlackJAX step
and the log density at the new temperature (:meth:`MCMCKernel.transition`);
:class:`TransitionInfo` is what one transition reports. The package docstring
(:mod:`rdppl.sampler.kernels`) says how kernels, temperatures and step sizes meet.
"""

from __future__ import annotations

import abc
import dataclasses
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rdppl.sampler.adaptation import (
    MASS_MATRICES,
    MassMatrixAdaptation,
    StepSizeAdaptation,
    mass_matrix_adaptation,
    step_size_adaptation,
)

__all__ = [
    "Evaluation",
    "LogDensity",
    "MCMCKernel",
    "TransitionInfo",
    "transition_info",
]

LogDensity = Callable[[jax.Array], jax.Array]


class TransitionInfo(NamedTuple):
    """Diagnostics of one transition of one chain (data, never exceptions)."""

    acceptance_rate: jax.Array
    is_divergent: jax.Array
    num_gradient_evaluations: jax.Array
    #: a term added to the chain's log AIS weight by a move that does not leave the
    #: tempered target invariant (``HMC(metropolis=False)``); ``None``: none
    log_weight_increment: Any = None
    #: the chain's acceptance level after a move that carries it on
    #: (``HMC(acceptance_drift=...)``); ``None``: left as it was
    acceptance_level: Any = None


class Evaluation(NamedTuple):
    """Log prior and distortion at a chain's position, and their gradients.

    Kernels that integrate with them (:attr:`MCMCKernel.caches_gradients`) hand
    them on from one transition to the next, so a temperature change costs no
    gradient evaluation: the gradient of ``log p(u) - beta d(u)`` is
    ``prior_grad - beta * distortion_grad`` at any ``beta``.
    """

    log_prior: jax.Array
    distortion: jax.Array
    prior_grad: jax.Array
    distortion_grad: jax.Array


def check_positive_finite(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    if not value < float("inf"):
        raise ValueError(f"{name} must be finite, got {value!r}")


def check_in_interval(
    value: Any, name: str, low: float, high: float, *, closed_low: bool
) -> None:
    """A real number in ``[low, high)`` (``closed_low``) or ``(low, high)``."""
    interval = f"{'[' if closed_low else '('}{low}, {high})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in {interval}, got {value!r}")
    inside = (low <= value if closed_low else low < value) and value < high
    if not inside:
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")


def check_integer(value: Any, name: str, low: int, high: int | None = None) -> None:
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
        (:func:`rdppl.sampler.adaptation.step_size_adaptation`).
    mass_matrix
        Preconditioning: ``"identity"``, ``"diagonal"`` or ``"dense"``. Other than
        the identity, the preliminary run tracks the tempered posterior's weighted
        (co)variance across chains
        (:func:`rdppl.sampler.adaptation.mass_matrix_adaptation`) and records it at
        every temperature; the reported run replays it frozen as the inverse mass
        matrix. Dense costs ``dim**2`` per example and temperature to record: meant for
        a few tens of latent dimensions.
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
        check_positive_finite(self.step_size, "step_size")
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
        check_in_interval(
            self.target_acceptance, "target_acceptance", 0, 1, closed_low=False
        )
        check_in_interval(
            self.acceptance_smoothing, "acceptance_smoothing", 0, 1, closed_low=True
        )
        if not isinstance(self.adapt_step_size, bool):
            raise TypeError(
                f"adapt_step_size must be True or False, got {self.adapt_step_size!r}"
            )
        check_positive_finite(self.adaptation_rate, "adaptation_rate")
        if not isinstance(self.mass_matrix, str) or (
            self.mass_matrix not in MASS_MATRICES
        ):
            raise ValueError(
                f"mass_matrix must be one of {MASS_MATRICES}, got {self.mass_matrix!r}"
            )
        check_in_interval(
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

    def tuning_kernel(self) -> MCMCKernel:
        """The kernel of the preliminary run, which tunes this one: itself."""
        return self

    @property
    def caches_gradients(self) -> bool:
        """Whether :meth:`cached_transition` hands its evaluation on.

        No by default: BlackJAX's steps return only the tempered log density's
        gradient, so the AIS step evaluates the chains again after each temperature
        change.
        """
        return False

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
        """A transition that starts from, and returns, the chain's evaluation.

        ``evaluation`` (:class:`Evaluation`) holds the log prior,
        the distortion and their gradients at ``position``; ``evaluate`` computes
        them at another position. ``acceptance_level`` is the chain's
        (:class:`rdppl.sampler.ais.AISState`); a kernel that carries it on returns
        the new one in the info. Only kernels with :attr:`caches_gradients`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not cache gradients")

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
        return new_state.position, momentum, transition_info(self, info, position)

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


def transition_info(
    kernel: MCMCKernel, info: Any, position: jax.Array
) -> TransitionInfo:
    """A BlackJAX step's ``info`` as a :class:`TransitionInfo`."""
    return TransitionInfo(
        jnp.asarray(info.acceptance_rate, position.dtype),
        jnp.asarray(getattr(info, "is_divergent", False), bool),
        jnp.asarray(kernel.gradient_evaluations(info), jnp.int32),
    )
