"""The No-U-Turn sampler (BlackJAX) as an AIS transition."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rdppl.sampler.kernels.base import (
    MCMCKernel,
    check_integer,
    check_positive_finite,
)

__all__ = ["NUTS"]


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
        check_integer(self.max_num_doublings, "max_num_doublings", 1, 15)
        check_positive_finite(self.divergence_threshold, "divergence_threshold")

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
