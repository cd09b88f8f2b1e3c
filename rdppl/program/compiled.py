"""The traced program: pure functions of a flat latent vector and one example.

:class:`Program` holds a NumPyro program with its site names, arguments and
distortion, and computes (with :mod:`numpyro.infer.util`) the log prior and
distortion in one pass, a prior draw, the constrained site values and simulated data
(docs/math.md §1, §4). :func:`rdppl.program.tracing.trace_model` builds one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import distributions as dist
from numpyro import handlers
from numpyro.infer import util as numpyro_util

from rdppl.program.decorator import Distortion
from rdppl.program.errors import user_code
from rdppl.program.sites import base_distribution

__all__ = ["Program"]


class Program(eqx.Module):
    """A NumPyro program with its site names, arguments and distortion."""

    # not static: a program that is a pytree (an equinox module, a functools.partial)
    # has its arrays traced, so new weights do not recompile (rdppl.decoder_model)
    fn: Callable[..., Any]
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
        """The flat unconstrained vector as one array per latent site."""
        template = {
            name: jnp.zeros(shape, position.dtype) for name, shape in self.latent_shapes
        }
        return ravel_pytree(template)[1](position)

    def log_terms(
        self, position: jax.Array, example: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """``log p(u)`` (unconstrained, Jacobians included) and ``d(x, u)``."""
        with user_code(
            "tracing the program for one example (log density)", np.shape(example)
        ):
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
        """A draw from the prior, as a flat unconstrained vector."""
        with user_code(
            "tracing the program for one example (prior draw)", np.shape(example)
        ):
            conditioned, kwargs = self.bind(example)
            trace = handlers.trace(handlers.seed(conditioned, rng_key)).get_trace(
                *self.model_args, **kwargs
            )
            return self._unconstrain(conditioned, kwargs, trace)

    def constrain(self, position: jax.Array, example: jax.Array) -> dict:
        """Every latent (constrained) and deterministic site's value at ``position``."""
        with user_code(
            "tracing the program for one example (site values)", np.shape(example)
        ):
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
        """Data ``x`` and latents ``z*`` with ``z*`` exact for ``pi_beta(z | x)``."""
        with user_code(
            "tracing the program to simulate data (BDMC)", np.shape(template)
        ):
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
                base = base_distribution(observation)
                if isinstance(base, dist.Normal):
                    loc = jnp.broadcast_to(base.loc, shape)
                    scale = jnp.broadcast_to(base.scale, shape)
                    x = loc + scale / jnp.sqrt(beta) * noise
                else:
                    x = observation.sample(noise_key)
            return jnp.asarray(x).astype(template.dtype), position
