"""The model types: a marked NumPyro program, and the one type AIS runs on.

:class:`Model` (made by the :func:`model` decorator) marks a NumPyro program with the
site names rdppl needs. :class:`TracedModel` is what every estimator runs on: a
pytree of pure functions of a flat unconstrained latent vector ``u`` and an example
``x`` (docs/math.md §1). :func:`rdppl.program.tracing.trace_model` builds one from a
program; an encoder-started target (:mod:`rdppl.likelihood`) or a hand-written density
builds one from functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax

__all__ = [
    "DISTORTIONS",
    "LatentSite",
    "Model",
    "ModelStructure",
    "TracedModel",
    "distortion_name",
    "model",
]

DISTORTIONS = ("nll", "squared_error")
Distortion = str | Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Model:
    """A NumPyro program marked with the site names rdppl needs.

    Calling the object calls the program, so it can still be used with NumPyro's own
    inference (``numpyro.infer.MCMC(NUTS(model))`` works unchanged).

    Parameters
    ----------
    fn
        The NumPyro program, written for one example. The observed site takes its
        value from an argument (``numpyro.sample("x", ..., obs=x)``); when the program
        has a parameter named like the observed site, rdppl passes each example there
        (and conditions the site on it in any case).
    observed
        Name of the observed sample site whose value is an example of the data.
    reconstruction
        Optional name of a deterministic site holding the decoder output ``f(z)``;
        needed by the ``"squared_error"`` distortion and by user distortion functions.
    """

    fn: Callable[..., Any]
    observed: str
    reconstruction: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"model must be callable, got {self.fn!r}")
        if not isinstance(self.observed, str) or not self.observed:
            raise TypeError(
                f"observed must be a non-empty site name, got {self.observed!r}"
            )
        if self.reconstruction is not None and not isinstance(self.reconstruction, str):
            raise TypeError(
                "reconstruction must be a site name or None, got "
                f"{self.reconstruction!r}"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the program (so NumPyro's own inference can use the object)."""
        return self.fn(*args, **kwargs)


def model(
    fn: Callable[..., Any] | None = None,
    *,
    observed: str,
    reconstruction: str | None = None,
) -> Model | Callable[[Callable[..., Any]], Model]:
    """Mark a NumPyro program as a generative model for rdppl.

    Use it as a decorator, ``@rdppl.model(observed="x")``, or call it directly,
    ``rdppl.model(fn, observed="x")``.

    Parameters
    ----------
    fn
        The NumPyro program (for one example).
    observed
        Name of the observed sample site.
    reconstruction
        Name of a deterministic site with the reconstruction ``f(z)``, if any.

    Returns
    -------
    Model or decorator
        A :class:`Model`, or a decorator producing one when ``fn`` is omitted.

    Examples
    --------
    >>> import numpyro, numpyro.distributions as dist, rdppl
    >>> @rdppl.model(observed="x", reconstruction="x_hat")
    ... def linear(x=None):
    ...     z = numpyro.sample("z", dist.Normal(0, 1).expand([2]).to_event(1))
    ...     x_hat = numpyro.deterministic("x_hat", 2.0 * z)
    ...     numpyro.sample("x", dist.Normal(x_hat, 0.5).to_event(1), obs=x)
    >>> linear.observed
    'x'
    """

    def wrap(function: Callable[..., Any]) -> Model:
        if isinstance(function, Model):
            return Model(function.fn, observed, reconstruction)
        return Model(function, observed, reconstruction)

    if fn is None:
        return wrap
    return wrap(fn)


class LatentSite(NamedTuple):
    """Shape and support of one latent sample site."""

    name: str
    shape: tuple[int, ...]
    unconstrained_shape: tuple[int, ...]
    support: str


class ModelStructure(NamedTuple):
    """What the eager trace of a program revealed (hashable: a static field)."""

    latent_sites: tuple[LatentSite, ...]
    deterministic_sites: tuple[str, ...]
    observed: str
    reconstruction: str | None
    distortion: str
    observed_shape: tuple[int, ...]
    observed_distribution: str
    observed_scale_is_fixed: bool
    standard_normal_prior: bool
    reconstruction_shape: tuple[int, ...] | None
    num_latent_dimensions: int

    @property
    def latent_names(self) -> tuple[str, ...]:
        """Names of the latent sample sites, in flattening order."""
        return tuple(site.name for site in self.latent_sites)


class TracedModel(eqx.Module):
    """A model as the AIS engine sees it: pure functions of ``(u, example)``.

    Every estimator (forward and reverse AIS, importance sampling, BDMC) runs on this
    one type. Build it with :func:`trace_model` from a NumPyro program, or from
    functions (an encoder-started target, a hand-written density in a benchmark).
    The function fields are pytrees (equinox bound methods or plain functions), so
    arrays they hold are traced, never baked into compiled code.

    Attributes
    ----------
    log_terms
        ``(u, example) -> (log_prior, distortion)``, both scalars; the tempered log
        density at ``beta`` is ``log_prior - beta * distortion``.
    initial
        ``(rng_key, example) -> u``: a draw from the starting distribution, whose
        normalised density is ``exp(log_prior)``.
    constrain
        ``(u, example) -> dict`` of latent (constrained) and deterministic sites.
    simulator
        ``(rng_key, beta, template) -> (x, u)`` or ``None`` (see :meth:`simulate`).
    structure
        The :class:`ModelStructure` found when tracing.
    """

    log_terms: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
    initial: Callable[[jax.Array, jax.Array], jax.Array]
    constrain: Callable[[jax.Array, jax.Array], dict[str, jax.Array]]
    simulator: Callable[..., tuple[jax.Array, jax.Array]] | None
    structure: ModelStructure = eqx.field(static=True)

    def log_prior_and_distortion(
        self, position: jax.Array, example: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Log prior (Jacobian included) and distortion at a flat position."""
        return self.log_terms(position, example)

    def logdensity_fn(
        self, example: jax.Array, beta: jax.Array
    ) -> Callable[[jax.Array], jax.Array]:
        """The tempered log density ``log p(u) - beta d(x, u)`` of one example."""

        def logdensity(position: jax.Array) -> jax.Array:
            log_prior, distortion = self.log_terms(position, example)
            return log_prior - beta * distortion

        return logdensity

    def sample_initial(self, rng_key: jax.Array, example: jax.Array) -> jax.Array:
        """A flat unconstrained draw from the starting distribution."""
        return self.initial(rng_key, example)

    def site_values(
        self, position: jax.Array, example: jax.Array
    ) -> dict[str, jax.Array]:
        """Latent (constrained) and deterministic site values at a flat position."""
        return self.constrain(position, example)

    def simulate(
        self, rng_key: jax.Array, beta: jax.Array, template: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Simulate ``x`` with a known exact sample ``u*`` of ``pi_beta(. | x)``.

        Parameters
        ----------
        rng_key
            Random key.
        beta
            Inverse temperature ``beta*``.
        template
            An array of the observed site's shape and dtype (never used as data).

        Returns
        -------
        x, u
            The simulated example and the flat unconstrained ``u*``.
        """
        if self.simulator is None:
            raise ValueError("this target cannot simulate data (it is not a model)")
        return self.simulator(rng_key, beta, template)


def distortion_name(distortion: Distortion) -> str:
    """A printable name for a distortion (function names for callables)."""
    if isinstance(distortion, str):
        return distortion
    return getattr(distortion, "__qualname__", repr(distortion))
