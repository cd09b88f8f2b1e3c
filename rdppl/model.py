"""Trace a NumPyro program into the pieces AIS needs.

A generative model is an ordinary NumPyro program written for **one example**. Its
latent sample sites are mapped to one flat vector in unconstrained space with NumPyro's
bijections (the log-Jacobian is added to the prior term); the site named ``observed``
is conditioned on an example; the *distortion* is computed from the observed site's
log-likelihood (``"nll"``) or from a deterministic reconstruction site
(``"squared_error"`` or a user function). This module is the only place that knows about
NumPyro's effect handlers and sign conventions: everything downstream works with
``log_prior(u)`` and ``distortion(u)`` of a flat vector ``u``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions.transforms import biject_to

__all__ = [
    "Model",
    "ModelSpec",
    "LatentSite",
    "ModelStructure",
    "model",
    "as_model_spec",
    "DISTORTIONS",
]

DISTORTIONS = ("nll", "squared_error")


@dataclasses.dataclass(frozen=True)
class Model:
    """A NumPyro program marked with the site names rdppl needs.

    Calling the object calls the program, so it can still be used with NumPyro's own
    inference (``numpyro.infer.MCMC(NUTS(model))`` works unchanged).

    Parameters
    ----------
    fn
        The NumPyro program, written for one example. The observed site must take its
        value from an argument (``numpyro.sample("x", ..., obs=x)``); rdppl conditions
        it on each example itself, so the argument may be left at ``None``.
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
    """What a trace of the program revealed (found eagerly, outside jit)."""

    latent_sites: tuple[LatentSite, ...]
    observed_shape: tuple[int, ...]
    observed_distribution: str
    reconstruction_shape: tuple[int, ...] | None
    num_latent_dimensions: int


class ModelSpec(eqx.Module):
    """A model together with its distortion.

    A pytree whose leaves are all static (the program, names and distortion), so it
    can be passed to ``eqx.filter_jit`` functions; a wrapper holding arrays (such as
    an encoder) keeps them dynamic. The methods are pure functions of arrays, safe
    under ``jit`` and ``vmap``. Extra program arguments are passed explicitly so new
    values never force a recompilation.
    """

    fn: Callable[..., Any]
    observed: str
    reconstruction: str | None
    distortion: str | Callable[[jax.Array, jax.Array], jax.Array]

    # -- tracing helpers -------------------------------------------------------
    def _conditioned(self, example: Any) -> Callable[..., Any]:
        return handlers.condition(self.fn, data={self.observed: example})

    def _latent_names(self, trace: Mapping[str, Any]) -> list[str]:
        return [
            name
            for name, site in trace.items()
            if site["type"] == "sample"
            and not site["is_observed"]
            and name != self.observed
        ]

    def sample_prior(
        self,
        rng_key: jax.Array,
        example: jax.Array,
        model_args: tuple = (),
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> dict[str, jax.Array]:
        """Draw the latent sites from the prior, in unconstrained space."""
        model_kwargs = dict(model_kwargs or {})
        trace = handlers.trace(
            handlers.seed(self._conditioned(example), rng_key)
        ).get_trace(*model_args, **model_kwargs)
        return {
            name: biject_to(trace[name]["fn"].support).inv(trace[name]["value"])
            for name in self._latent_names(trace)
        }

    def unravel_fn(
        self,
        example: jax.Array,
        model_args: tuple = (),
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> Callable[[jax.Array], dict[str, jax.Array]]:
        """Return the function mapping a flat unconstrained vector to site values."""
        shapes = jax.eval_shape(
            lambda key: self.sample_prior(key, example, model_args, model_kwargs),
            jax.random.key(0),
        )
        template = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return ravel_pytree(template)[1]

    def sample_prior_flat(
        self,
        rng_key: jax.Array,
        example: jax.Array,
        model_args: tuple = (),
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> jax.Array:
        """Draw the latent sites from the prior as one flat unconstrained vector."""
        return ravel_pytree(
            self.sample_prior(rng_key, example, model_args, model_kwargs)
        )[0]

    def trace_at(
        self,
        unconstrained: Mapping[str, jax.Array],
        example: jax.Array,
        model_args: tuple = (),
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[Mapping[str, Any], jax.Array]:
        """Run the program at given unconstrained latents.

        Returns the trace and the total log-Jacobian of the constraining bijections.
        """
        log_jacobians = []

        def constrain(site: Mapping[str, Any]) -> jax.Array | None:
            if site["type"] != "sample" or site["name"] not in unconstrained:
                return None
            transform = biject_to(site["fn"].support)
            free = unconstrained[site["name"]]
            value = transform(free)
            log_jacobians.append(jnp.sum(transform.log_abs_det_jacobian(free, value)))
            return value

        model_kwargs = dict(model_kwargs or {})
        trace = handlers.trace(
            handlers.substitute(self._conditioned(example), substitute_fn=constrain)
        ).get_trace(*model_args, **model_kwargs)
        return trace, sum(log_jacobians, jnp.zeros(()))

    def site_values(
        self,
        position: jax.Array,
        example: jax.Array,
        model_args: tuple = (),
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> dict[str, jax.Array]:
        """Latent (constrained) and deterministic site values at a flat position."""
        unravel = self.unravel_fn(example, model_args, model_kwargs)
        trace, _ = self.trace_at(unravel(position), example, model_args, model_kwargs)
        names = self._latent_names(trace) + [
            name for name, site in trace.items() if site["type"] == "deterministic"
        ]
        return {name: trace[name]["value"] for name in names}

    def log_prior_and_distortion(
        self,
        position: jax.Array,
        example: jax.Array,
        model_args: tuple = (),
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """Log prior density (Jacobian included) and distortion at a flat position.

        Parameters
        ----------
        position
            Flat unconstrained latent vector.
        example
            One data example (the observed site's value).

        Returns
        -------
        log_prior, distortion
            Scalars. The tempered log density at inverse temperature ``beta`` is
            ``log_prior - beta * distortion``.
        """
        unravel = self.unravel_fn(example, model_args, model_kwargs)
        trace, log_jacobian = self.trace_at(
            unravel(position), example, model_args, model_kwargs
        )
        log_prior = log_jacobian
        for name in self._latent_names(trace):
            log_prior = log_prior + _site_log_prob(trace[name])
        return log_prior, self._distortion_from_trace(trace, example)

    def _distortion_from_trace(
        self, trace: Mapping[str, Any], example: jax.Array
    ) -> jax.Array:
        if self.distortion == "nll":
            return -_site_log_prob(trace[self.observed])
        reconstruction = trace[self.reconstruction]["value"]
        if self.distortion == "squared_error":
            return jnp.sum(jnp.square(example - reconstruction))
        return jnp.asarray(self.distortion(example, reconstruction))

    # -- eager validation ------------------------------------------------------
    def inspect(
        self,
        example: Any,
        model_args: tuple = (),
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> ModelStructure:
        """Trace the program once, eagerly, and validate it.

        Raises
        ------
        ValueError
            Unknown observed or reconstruction site, discrete latent sites, other
            observed sites, no latent sites, a mismatched example shape, or a
            distortion that does not return a scalar.
        TypeError
            A distortion that is neither a known name nor a callable.
        """
        if isinstance(self.distortion, str) and self.distortion not in DISTORTIONS:
            raise ValueError(
                f"distortion must be one of {DISTORTIONS} or a callable "
                f"d(x, x_hat) -> scalar, got {self.distortion!r}"
            )
        if not (isinstance(self.distortion, str) or callable(self.distortion)):
            raise TypeError(
                f"distortion must be one of {DISTORTIONS} or a callable "
                f"d(x, x_hat) -> scalar, got {self.distortion!r}"
            )
        model_kwargs = dict(model_kwargs or {})
        trace = handlers.trace(
            handlers.seed(self._conditioned(example), jax.random.key(0))
        ).get_trace(*model_args, **model_kwargs)
        sample_sites = [n for n, s in trace.items() if s["type"] == "sample"]
        if self.observed not in trace or trace[self.observed]["type"] != "sample":
            raise ValueError(
                f"observed site {self.observed!r} is not a sample site of the model; "
                f"its sample sites are {sample_sites}"
            )
        needs_reconstruction = self.distortion != "nll"
        if needs_reconstruction and self.reconstruction is None:
            kind = (
                "squared_error"
                if self.distortion == "squared_error"
                else "a user distortion function"
            )
            raise ValueError(
                f"distortion {kind!r} needs a reconstruction site: pass "
                "reconstruction='name' of a numpyro.deterministic site to "
                "rdppl.model(...) or rd_curve(...)"
            )
        if self.reconstruction is not None and self.reconstruction not in trace:
            raise ValueError(
                f"reconstruction site {self.reconstruction!r} is not in the model; "
                f"its sites are {list(trace)}"
            )
        others = [
            n
            for n, s in trace.items()
            if s["type"] == "sample" and s["is_observed"] and n != self.observed
        ]
        if others:
            raise ValueError(
                f"the model has observed sites or factors other than "
                f"{self.observed!r}: {others}; rdppl needs the prior over the latents "
                "to be normalised, so every other site must be latent"
            )
        latent_names = self._latent_names(trace)
        if not latent_names:
            raise ValueError("the model has no latent sample sites")
        latent_sites = []
        for name in latent_names:
            site = trace[name]
            support = site["fn"].support
            if support.is_discrete or getattr(site["fn"], "is_discrete", False):
                raise ValueError(
                    f"latent site {name!r} has a discrete distribution "
                    f"({type(site['fn']).__name__} with support {support}); rdppl "
                    "needs continuous latents (marginalise or relax discrete sites)"
                )
            free = biject_to(support).inv(site["value"])
            latent_sites.append(
                LatentSite(
                    name,
                    tuple(np.shape(site["value"])),
                    tuple(np.shape(free)),
                    str(support),
                )
            )
        observed_site = trace[self.observed]
        site_shape = tuple(observed_site["fn"].shape())
        example_shape = tuple(np.shape(example))
        if example_shape != site_shape:
            raise ValueError(
                f"each example must have the shape of observed site "
                f"{self.observed!r}, {site_shape}, but has shape {example_shape}"
            )
        reconstruction_shape = None
        if self.reconstruction is not None:
            reconstruction_shape = tuple(np.shape(trace[self.reconstruction]["value"]))
        if callable(self.distortion):
            value = self.distortion(
                jnp.asarray(example), trace[self.reconstruction]["value"]
            )
            if np.shape(value) != ():
                raise ValueError(
                    "a distortion function must return a scalar per example, got "
                    f"shape {np.shape(value)}"
                )
        return ModelStructure(
            latent_sites=tuple(latent_sites),
            observed_shape=site_shape,
            observed_distribution=type(observed_site["fn"]).__name__,
            reconstruction_shape=reconstruction_shape,
            num_latent_dimensions=int(
                sum(int(np.prod(s.unconstrained_shape)) for s in latent_sites)
            ),
        )


def _site_log_prob(site: Mapping[str, Any]) -> jax.Array:
    log_prob = jnp.sum(site["fn"].log_prob(site["value"]))
    if site.get("scale") is not None:
        log_prob = site["scale"] * log_prob
    return log_prob


def as_model_spec(
    model: Model | Callable[..., Any],
    *,
    distortion: str | Callable[[jax.Array, jax.Array], jax.Array],
    observed: str | None = None,
    reconstruction: str | None = None,
) -> ModelSpec:
    """Combine a model (decorated or plain) with site names and a distortion.

    Keyword arguments override the names given to :func:`model`; a plain NumPyro
    callable must be given ``observed``.
    """
    if isinstance(model, Model):
        observed = observed or model.observed
        reconstruction = reconstruction or model.reconstruction
        fn = model.fn
    else:
        if not callable(model):
            raise TypeError(f"model must be a NumPyro program, got {model!r}")
        if observed is None:
            raise ValueError(
                "a plain NumPyro program needs observed='site name' (or decorate it "
                "with @rdppl.model(observed=...))"
            )
        fn = model
    return ModelSpec(fn, observed, reconstruction, distortion)
