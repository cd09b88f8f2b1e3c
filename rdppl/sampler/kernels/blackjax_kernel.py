"""Any BlackJAX kernel as an AIS transition (:class:`BlackJAXKernel`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rdppl.sampler.kernels.base import (
    MCMCKernel,
    check_integer,
)

__all__ = ["BlackJAXKernel"]


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
        check_integer(
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
