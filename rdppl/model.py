"""Trace a NumPyro program into the one type the AIS engine runs on.

A generative model is an ordinary NumPyro program written for **one example**.
:func:`trace_model` inspects it once, eagerly, and returns a :class:`TracedModel`: a
pytree of pure functions of a flat unconstrained latent vector ``u`` and an example
``x``:

- ``log_prior_and_distortion(u, x)``: ``log p(u)`` on unconstrained space (Jacobians
  included, computed by :mod:`numpyro.infer.util`) and the distortion ``d(x, u)``
  (docs/math.md §1);
- ``sample_initial(key, x)``: a draw from the starting distribution (the prior);
- ``site_values(u, x)``: every latent (constrained) and deterministic site;
- ``simulate(key, beta, template)``: data with a known exact sample of ``pi_beta``
  (BDMC, docs/math.md §4).

The program is called with the example as its observed argument (``x``) whenever an
example is known, so programs that read ``x.shape`` work; it is only called with a
template in place of data when rdppl simulates. This module is the only one that
knows NumPyro's handlers, traces and sign conventions. Other starting distributions
(an encoder, :mod:`rdppl.likelihood`) build a :class:`TracedModel` from functions.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import distributions as dist
from numpyro import handlers
from numpyro.infer import util as numpyro_util

__all__ = [
    "DISTORTIONS",
    "LatentSite",
    "Model",
    "ModelStructure",
    "TracedModel",
    "model",
    "prior_predictive_example",
    "trace_model",
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


def _observed_argument(
    fn: Callable[..., Any], observed: str, model_args: tuple, model_kwargs: Mapping
) -> str | None:
    """The program's parameter that receives each example, if it has one."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    if observed not in parameters:
        return None
    if observed in model_kwargs:
        raise ValueError(
            f"model_kwargs must not contain {observed!r}: rdppl passes each example "
            f"as the program's argument {observed!r}"
        )
    bound = inspect.signature(fn).bind_partial(*model_args)
    if observed in bound.arguments:
        raise ValueError(
            f"model_args fill the program's argument {observed!r}, which receives "
            "each example; pass the other arguments by keyword (model_kwargs) or "
            "put the observed argument after them"
        )
    return observed


def _base_distribution(fn: dist.Distribution) -> dist.Distribution:
    while isinstance(
        fn, dist.Independent | dist.ExpandedDistribution | dist.MaskedDistribution
    ):
        fn = fn.base_dist
    return fn


class _Program(eqx.Module):
    """A NumPyro program with its site names, arguments and distortion."""

    fn: Callable[..., Any] = eqx.field(static=True)
    observed: str = eqx.field(static=True)
    observed_argument: str | None = eqx.field(static=True)
    reconstruction: str | None = eqx.field(static=True)
    distortion: Distortion = eqx.field(static=True)
    latent_shapes: tuple[tuple[str, tuple[int, ...]], ...] = eqx.field(static=True)
    model_args: tuple
    model_kwargs: dict

    def bind(self, value: Any, *, condition: bool = True) -> tuple[Callable, dict]:
        """The program with the observed argument (and site) set to ``value``."""
        kwargs = dict(self.model_kwargs)
        if self.observed_argument is not None:
            kwargs[self.observed_argument] = value
        if not condition:
            return self.fn, kwargs
        return handlers.condition(self.fn, data={self.observed: value}), kwargs

    def unravel(self, position: jax.Array) -> dict[str, jax.Array]:
        template = {
            name: jnp.zeros(shape, position.dtype) for name, shape in self.latent_shapes
        }
        return ravel_pytree(template)[1](position)

    def log_terms(
        self, position: jax.Array, example: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        conditioned, kwargs = self.bind(example)
        # The handler NumPyro's potential_energy uses: constrain each latent and add
        # its log-Jacobian as a factor site; one pass of the program.
        substituted = handlers.substitute(
            conditioned,
            substitute_fn=partial(
                numpyro_util._unconstrain_reparam, self.unravel(position)
            ),
        )
        log_probs, trace = numpyro_util.compute_log_probs(
            substituted, self.model_args, kwargs, {}
        )
        log_prior = sum(
            (v for k, v in log_probs.items() if k != self.observed),
            start=jnp.zeros((), position.dtype),
        )
        return log_prior, self._distortion(log_probs, trace, example)

    def _distortion(
        self, log_probs: Mapping[str, jax.Array], trace: Mapping, example: jax.Array
    ) -> jax.Array:
        if self.distortion == "nll":
            return -log_probs[self.observed]
        reconstruction = trace[self.reconstruction]["value"]
        if self.distortion == "squared_error":
            return jnp.sum(jnp.square(example - reconstruction))
        return jnp.asarray(self.distortion(example, reconstruction))

    def _unconstrain(self, model: Callable, kwargs: dict, trace: Mapping) -> jax.Array:
        values = {name: trace[name]["value"] for name, _ in self.latent_shapes}
        free = numpyro_util.unconstrain_fn(model, self.model_args, kwargs, values)
        return ravel_pytree(free)[0]

    def initial(self, rng_key: jax.Array, example: jax.Array) -> jax.Array:
        conditioned, kwargs = self.bind(example)
        trace = handlers.trace(handlers.seed(conditioned, rng_key)).get_trace(
            *self.model_args, **kwargs
        )
        return self._unconstrain(conditioned, kwargs, trace)

    def constrain(self, position: jax.Array, example: jax.Array) -> dict:
        conditioned, kwargs = self.bind(example)
        values = numpyro_util.constrain_fn(
            conditioned,
            self.model_args,
            kwargs,
            self.unravel(position),
            return_deterministic=True,
        )
        return dict(values)

    def simulate(
        self, rng_key: jax.Array, beta: jax.Array, template: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        latent_key, noise_key = jax.random.split(rng_key)
        # The template only gives the program a shape to read; latents come from the
        # prior and x is drawn below from the observation distribution at z*.
        program, kwargs = self.bind(template, condition=False)
        trace = handlers.trace(handlers.seed(program, latent_key)).get_trace(
            *self.model_args, **kwargs
        )
        position = self._unconstrain(program, kwargs, trace)
        observation = trace[self.observed]["fn"]
        shape = template.shape
        noise = jax.random.normal(noise_key, shape, dtype=position.dtype)
        if self.distortion == "squared_error":
            reconstruction = trace[self.reconstruction]["value"]
            x = reconstruction + noise * jnp.sqrt(0.5 / beta)
        else:
            base = _base_distribution(observation)
            if isinstance(base, dist.Normal):
                loc = jnp.broadcast_to(base.loc, shape)
                scale = jnp.broadcast_to(base.scale, shape)
                x = loc + scale / jnp.sqrt(beta) * noise
            else:
                x = observation.sample(noise_key)
        return jnp.asarray(x).astype(template.dtype), position


def _as_program_parts(
    model: Model | Callable[..., Any],
    observed: str | None,
    reconstruction: str | None,
) -> tuple[Callable[..., Any], str, str | None]:
    if isinstance(model, Model):
        return (
            model.fn,
            observed or model.observed,
            reconstruction or model.reconstruction,
        )
    if not callable(model):
        raise TypeError(f"model must be a NumPyro program, got {model!r}")
    if observed is None:
        raise ValueError(
            "a plain NumPyro program needs observed='site name' (or decorate it "
            "with @rdppl.model(observed=...))"
        )
    return model, observed, reconstruction


def _check_distortion(distortion: Any) -> None:
    if isinstance(distortion, str):
        if distortion not in DISTORTIONS:
            raise ValueError(
                f"distortion must be one of {DISTORTIONS} or a callable "
                f"d(x, x_hat) -> scalar, got {distortion!r}"
            )
    elif not callable(distortion):
        raise TypeError(
            f"distortion must be one of {DISTORTIONS} or a callable "
            f"d(x, x_hat) -> scalar, got {distortion!r}"
        )


def _eager_trace(
    program: Callable, model_args: tuple, kwargs: dict, seed: int
) -> Mapping[str, Any]:
    try:
        return handlers.trace(
            handlers.seed(program, jax.random.key(seed))
        ).get_trace(*model_args, **kwargs)
    except AssertionError as error:
        if "unique names" in str(error):
            raise ValueError(
                f"two sites of the model share a name ({error}); a "
                "numpyro.deterministic must not be named like a sample site"
            ) from error
        raise


def _check_sites(
    trace: Mapping[str, Any], observed: str, reconstruction: str | None
) -> list[str]:
    """Validate the trace's sites; return the latent site names."""
    sample_sites = [n for n, s in trace.items() if s["type"] == "sample"]
    if observed not in trace or trace[observed]["type"] != "sample":
        raise ValueError(
            f"observed site {observed!r} is not a sample site of the model; "
            f"its sample sites are {sample_sites}"
        )
    if reconstruction is not None:
        if reconstruction not in trace:
            raise ValueError(
                f"reconstruction site {reconstruction!r} is not in the model; "
                f"its sites are {list(trace)}"
            )
        if trace[reconstruction]["type"] != "deterministic":
            raise ValueError(
                f"reconstruction site {reconstruction!r} is a "
                f"{trace[reconstruction]['type']} site; it must be a "
                "numpyro.deterministic site holding the decoder output f(z)"
            )
    others = [
        n
        for n, s in trace.items()
        if s["type"] == "sample" and s["is_observed"] and n != observed
    ]
    if others:
        raise ValueError(
            f"the model has observed sites or factors other than {observed!r}: "
            f"{others}; rdppl needs the prior over the latents to be normalised, so "
            "every other site must be latent"
        )
    latent_names = [
        n
        for n, s in trace.items()
        if s["type"] == "sample" and not s["is_observed"] and n != observed
    ]
    if not latent_names:
        raise ValueError("the model has no latent sample sites")
    for name in latent_names:
        _check_latent(trace[name])
    return latent_names


def _check_latent(site: Mapping[str, Any]) -> None:
    name, fn = site["name"], site["fn"]
    if fn.support.is_discrete or getattr(fn, "is_discrete", False):
        raise ValueError(
            f"latent site {name!r} has a discrete distribution "
            f"({type(fn).__name__} with support {fn.support}); rdppl needs "
            "continuous latents (marginalise or relax discrete sites)"
        )
    scale = site.get("scale")
    if scale is not None and not numpyro_util.is_identically_one(scale):
        raise ValueError(
            f"latent site {name!r} has its log density scaled by {scale} "
            "(numpyro.handlers.scale or a subsampled plate); rdppl needs a "
            "normalised prior: remove the scale or subsample only observed sites"
        )
    if isinstance(fn, dist.MaskedDistribution) and not (
        isinstance(fn._mask, bool) and fn._mask
    ):
        raise ValueError(
            f"latent site {name!r} is masked (numpyro.handlers.mask or "
            ".mask()); a masked latent has an improper prior, which rdppl cannot "
            "anneal from: mask only the observed site"
        )


def _structure(
    trace: Mapping[str, Any],
    second_trace: Mapping[str, Any],
    latent_names: list[str],
    latent_shapes: dict[str, tuple[int, ...]],
    *,
    observed: str,
    reconstruction: str | None,
    distortion: Distortion,
) -> ModelStructure:
    latent_sites = tuple(
        LatentSite(
            name,
            tuple(np.shape(trace[name]["value"])),
            latent_shapes[name],
            str(trace[name]["fn"].support),
        )
        for name in sorted(latent_names)
    )
    base = _base_distribution(trace[observed]["fn"])
    scale_is_fixed = False
    if isinstance(base, dist.Normal):
        scales = [
            np.asarray(_base_distribution(t[observed]["fn"]).scale)
            for t in (trace, second_trace)
        ]
        scale_is_fixed = scales[0].shape == scales[1].shape and bool(
            np.allclose(*scales)
        )
    return ModelStructure(
        latent_sites=latent_sites,
        deterministic_sites=tuple(
            n for n, s in trace.items() if s["type"] == "deterministic"
        ),
        observed=observed,
        reconstruction=reconstruction,
        distortion=distortion_name(distortion),
        observed_shape=tuple(trace[observed]["fn"].shape()),
        observed_distribution=type(base).__name__,
        observed_scale_is_fixed=scale_is_fixed,
        reconstruction_shape=None
        if reconstruction is None
        else tuple(np.shape(trace[reconstruction]["value"])),
        num_latent_dimensions=int(
            sum(int(np.prod(shape)) for shape in latent_shapes.values())
        ),
    )


def distortion_name(distortion: Distortion) -> str:
    """A printable name for a distortion (function names for callables)."""
    if isinstance(distortion, str):
        return distortion
    return getattr(distortion, "__qualname__", repr(distortion))


def trace_model(
    model: Model | Callable[..., Any],
    example: Any,
    *,
    distortion: Distortion = "nll",
    observed: str | None = None,
    reconstruction: str | None = None,
    model_args: tuple = (),
    model_kwargs: Mapping[str, Any] | None = None,
) -> TracedModel:
    """Trace a program once, eagerly, validate it, and return a :class:`TracedModel`.

    Parameters
    ----------
    model
        A :func:`model`-decorated program, or a plain one with ``observed=``.
    example
        One example of the data (its shape and dtype are checked against the
        observed site); the program receives it as its observed argument.
    distortion
        ``"nll"``, ``"squared_error"`` or a function ``d(x, x_hat) -> scalar``.
    observed, reconstruction
        Site names overriding those given to :func:`model`.
    model_args, model_kwargs
        Extra arguments of the program (arrays are traced in compiled code).

    Returns
    -------
    TracedModel

    Raises
    ------
    ValueError
        Unknown observed or reconstruction site, a reconstruction site that is not
        deterministic, discrete, scaled or masked latent sites, other observed
        sites, no latent sites, a mismatched example shape, duplicate site names,
        or a distortion that does not return a scalar.
    TypeError
        A distortion that is neither a known name nor a callable.
    """
    fn, observed, reconstruction = _as_program_parts(model, observed, reconstruction)
    _check_distortion(distortion)
    if distortion != "nll" and reconstruction is None:
        kind = distortion if isinstance(distortion, str) else "a user distortion function"
        raise ValueError(
            f"distortion {kind!r} needs a reconstruction site: pass "
            "reconstruction='name' of a numpyro.deterministic site to "
            "rdppl.model(...) or to this function"
        )
    model_args = tuple(model_args)
    model_kwargs = dict(model_kwargs or {})
    argument = _observed_argument(fn, observed, model_args, model_kwargs)
    program = _Program(
        fn, observed, argument, reconstruction, distortion, (), model_args, model_kwargs
    )
    conditioned, kwargs = program.bind(example)
    trace = _eager_trace(conditioned, model_args, kwargs, 0)
    latent_names = _check_sites(trace, observed, reconstruction)
    site_shape = tuple(trace[observed]["fn"].shape())
    if tuple(np.shape(example)) != site_shape:
        raise ValueError(
            f"each example must have the shape of observed site {observed!r}, "
            f"{site_shape}, but has shape {tuple(np.shape(example))}; write the "
            "model for ONE example and pass data with a leading example axis"
        )
    free = numpyro_util.unconstrain_fn(
        conditioned,
        model_args,
        kwargs,
        {name: trace[name]["value"] for name in latent_names},
    )
    latent_shapes = {name: tuple(np.shape(free[name])) for name in latent_names}
    if callable(distortion):
        value = distortion(jnp.asarray(example), trace[reconstruction]["value"])
        if np.shape(value) != ():
            raise ValueError(
                "a distortion function must return a scalar per example, got "
                f"shape {np.shape(value)}"
            )
    structure = _structure(
        trace,
        _eager_trace(conditioned, model_args, kwargs, 1),
        latent_names,
        latent_shapes,
        observed=observed,
        reconstruction=reconstruction,
        distortion=distortion,
    )
    program = dataclasses.replace(
        program, latent_shapes=tuple(sorted(latent_shapes.items()))
    )
    return TracedModel(
        log_terms=program.log_terms,
        initial=program.initial,
        constrain=program.constrain,
        simulator=program.simulate,
        structure=structure,
    )


def prior_predictive_example(
    model: Model | Callable[..., Any],
    *,
    observed: str | None = None,
    model_args: tuple = (),
    model_kwargs: Mapping[str, Any] | None = None,
) -> jax.Array:
    """One draw of the observed site from the program run without data.

    Used as a shape and dtype template when no data are given (BDMC).

    Raises
    ------
    ValueError
        If the program cannot run without data or has no such site.
    """
    fn, observed, _ = _as_program_parts(model, observed, None)
    model_kwargs = dict(model_kwargs or {})
    argument = _observed_argument(fn, observed, tuple(model_args), model_kwargs)
    if argument is not None:
        model_kwargs[argument] = None
    try:
        trace = _eager_trace(fn, tuple(model_args), model_kwargs, 0)
    except (AttributeError, TypeError) as error:
        raise ValueError(
            f"the program failed when run without data ({type(error).__name__}: "
            f"{error}); it probably reads its observed argument {observed!r}. Pass "
            "an example array as data= to give the simulated data's shape"
        ) from error
    if observed not in trace:
        raise ValueError(
            f"observed site {observed!r} is not in the model; its sites are "
            f"{list(trace)}"
        )
    return jnp.asarray(trace[observed]["value"])
