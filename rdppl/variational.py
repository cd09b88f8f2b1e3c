"""Gaussian encoders and the variational bounds of Alemi et al. (docs/math.md §6).

With encoder ``e(z|x)``, decoder ``d(x|z)`` and the prior ``m(z) = N(0, I)`` as the
marginal, over data ``p*(x)``:

    R = E_x KL(e(z|x) || m(z))            (analytic for a Gaussian encoder)
    D = -E_x E_{e(z|x)} log d(x|z)        (Monte Carlo)
    H - D <= I_e(X; Z) <= R,    ELBO = -(R + D)

where ``H`` is the entropy of the data distribution. All quantities are in nats and
per example unless a name says otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import xarray as xr
from jax.typing import ArrayLike
from numpyro.distributions.kl import kl_divergence

from rdppl import results
from rdppl.program.decoders import Likelihood, observation_distribution
from rdppl.program.decorator import Distortion, Model, TracedModel
from rdppl.program.prepare import prepare_model
from rdppl.program.recompile import note_program
from rdppl.sampler.mappings import release_compiled_programs
from rdppl.validation import validate_encoder, validate_rng_key

__all__ = [
    "GaussianEncoder",
    "empirical_entropy",
    "gaussian_rate",
    "variational_bounds",
]


@final
class GaussianEncoder(eqx.Module):
    """Diagonal Gaussian encoder ``e(z|x) = N(loc(x), diag(scale(x)^2))``.

    Applies to one example, like any Equinox layer; ``jax.vmap`` it over a batch.
    ``scale = softplus(scale_net(x))``.

    Parameters
    ----------
    loc_net
        Callable mapping one example to ``latent_dim`` means.
    scale_net
        Callable mapping one example to ``latent_dim`` pre-activations of the standard
        deviations.
    latent_dim
        Dimension of ``z``.

    Examples
    --------
    >>> import equinox as eqx, jax, jax.numpy as jnp
    >>> k1, k2 = jax.random.split(jax.random.key(0))
    >>> encoder = GaussianEncoder(
    ...     eqx.nn.MLP(4, 2, 16, 1, key=k1), eqx.nn.MLP(4, 2, 16, 1, key=k2),
    ...     latent_dim=2,
    ... )
    >>> loc, scale = encoder(jnp.ones(4))
    >>> loc.shape, bool(jnp.all(scale > 0))
    ((2,), True)
    """

    loc_net: Callable[[jax.Array], jax.Array]
    scale_net: Callable[[jax.Array], jax.Array]
    latent_dim: int = eqx.field(static=True)

    def __check_init__(self) -> None:
        """Validate the hyperparameters."""
        value = self.latent_dim
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {value!r}")

    def __call__(self, x: ArrayLike) -> tuple[jax.Array, jax.Array]:
        """Location and scale of ``e(z|x)`` for one example.

        Parameters
        ----------
        x
            One example.

        Returns
        -------
        loc, scale
            Both of shape ``(latent_dim,)``; ``scale > 0``.
        """
        x = jnp.asarray(x)
        loc = self.loc_net(x)
        scale = jax.nn.softplus(self.scale_net(x))
        if loc.shape != (self.latent_dim,) or scale.shape != (self.latent_dim,):
            raise ValueError(
                f"encoder networks returned shapes {loc.shape} and {scale.shape}, "
                f"expected ({self.latent_dim},) (latent_dim)"
            )
        return loc, scale


def gaussian_rate(loc: ArrayLike, scale: ArrayLike) -> jax.Array:
    """``KL(N(loc, diag(scale^2)) || N(0, I))`` summed over the last axis (nats).

    Parameters
    ----------
    loc, scale
        Encoder location and standard deviation; leading axes are batch axes.

    Returns
    -------
    jax.Array
        The rate, with the last axis reduced.
    """
    loc = jnp.asarray(loc)
    scale = jnp.asarray(scale)
    prior = dist.Normal(jnp.zeros_like(loc), jnp.ones_like(scale))
    return jnp.sum(kl_divergence(dist.Normal(loc, scale), prior), axis=-1)


def _example_rate_distortion(
    rng_key: jax.Array,
    encoder: GaussianEncoder,
    decoder: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    *,
    num_samples: int,
    likelihood: Likelihood,
    scale: float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Rate, Monte Carlo distortion and its standard error for one example."""
    loc, enc_scale = encoder(x)
    noise = jax.random.normal(rng_key, (num_samples, *loc.shape), loc.dtype)
    z = loc[None] + enc_scale[None] * noise
    outputs = jax.vmap(decoder)(z)
    log_lik = observation_distribution(
        outputs, likelihood=likelihood, scale=scale
    ).log_prob(jnp.broadcast_to(x, outputs.shape))
    distortion = -jnp.mean(log_lik)
    standard_error = jnp.std(log_lik, ddof=1) / math.sqrt(num_samples)
    return gaussian_rate(loc, enc_scale), distortion, standard_error


def encoder_rate_distortion(
    rng_key: jax.Array,
    encoder: GaussianEncoder,
    decoder: Callable[[jax.Array], jax.Array],
    data: jax.Array,
    *,
    num_samples: int,
    likelihood: Likelihood,
    scale: float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-example rate, distortion and distortion standard error (pure, jittable)."""
    keys = jax.random.split(rng_key, data.shape[0])
    return jax.vmap(
        lambda key, x: _example_rate_distortion(
            key,
            encoder,
            decoder,
            x,
            num_samples=num_samples,
            likelihood=likelihood,
            scale=scale,
        )
    )(keys, data)


def empirical_entropy(data: ArrayLike) -> float:
    """Entropy (nats) of the empirical distribution of the rows of discrete data.

    Treats the data set as the distribution ``p*(x)`` that puts mass
    ``count(x) / N`` on each distinct row; this is the ``H`` of Alemi et al.'s lower
    bound ``H - D <= I`` for that distribution (e.g. binarised images).

    Parameters
    ----------
    data
        Array of shape ``(examples, ...)``.

    Returns
    -------
    float
        ``-sum_x p(x) log p(x)``; at most ``log(examples)``.
    """
    rows = np.asarray(data).reshape(np.shape(data)[0], -1)
    _, counts = np.unique(rows, axis=0, return_counts=True)
    probabilities = counts / counts.sum()
    return float(-np.sum(probabilities * np.log(probabilities)))


def _validate_entropy(data_entropy: Any, data: jax.Array) -> float | None:
    if isinstance(data_entropy, str) and data_entropy == "empirical":
        return empirical_entropy(data)
    if data_entropy is None:
        return None
    if (
        isinstance(data_entropy, int | float)
        and not isinstance(data_entropy, bool)
        and math.isfinite(data_entropy)
    ):
        return float(data_entropy)
    raise ValueError(
        "data_entropy must be a finite number, 'empirical' or None, "
        f"got {data_entropy!r}"
    )


@eqx.filter_jit
def _encoder_estimates(
    target: TracedModel,
    encoder: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    rng_key: jax.Array,
    data: jax.Array,
    num_samples: int,
    analytic_rate: bool,
) -> tuple[jax.Array, ...]:
    """Per-example rate, distortion and their Monte Carlo standard errors."""

    def one(key: jax.Array, x: jax.Array) -> tuple[jax.Array, ...]:
        loc, scale = encoder(x)
        noise = jax.random.normal(key, (num_samples, *loc.shape), loc.dtype)
        u = loc[None] + scale[None] * noise
        log_prior, distortion = jax.vmap(
            lambda v: target.log_prior_and_distortion(v, x)
        )(u)
        log_encoder = jax.vmap(lambda v: jnp.sum(dist.Normal(loc, scale).log_prob(v)))(
            u
        )
        rate_samples = log_encoder - log_prior
        root = math.sqrt(num_samples)
        if analytic_rate:  # KL(e || N(0, I)) in closed form: no Monte Carlo error
            rate = gaussian_rate(loc, scale)
            rate_error = jnp.zeros_like(rate)
        else:
            rate = jnp.mean(rate_samples)
            rate_error = jnp.std(rate_samples, ddof=1) / root
        return (
            rate,
            rate_error,
            jnp.mean(distortion),
            jnp.std(distortion, ddof=1) / root,
        )

    return jax.vmap(one)(jax.random.split(rng_key, data.shape[0]), data)


def variational_bounds(
    model: Model | Callable[..., Any],
    data: ArrayLike,
    *,
    encoder: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    rng_key: jax.Array,
    num_samples: int = 16,
    distortion: Distortion = "nll",
    observed: str | None = None,
    reconstruction: str | None = None,
    model_args: Sequence[Any] = (),
    model_kwargs: Mapping[str, Any] | None = None,
    data_entropy: float | Literal["empirical"] | None = None,
) -> xr.DataTree:
    """Rate, distortion, ELBO and the bounds ``H - D <= I(X; Z) <= R`` of an encoder.

    The encoder ``e(u | x)`` is a diagonal Gaussian over the model's flat
    unconstrained latents (docs/math.md §6): ``rate = E_e[log e(u|x) - log p(u)]``
    (the closed-form KL when the prior is ``N(0, I)``, Monte Carlo otherwise) and
    ``distortion = E_e[d(x, u)]`` (Monte Carlo), per example.

    Parameters
    ----------
    model
        A :func:`rdppl.model` program (or a plain one with ``observed=``); for
        a decoder network use :func:`rdppl.decoder_model`.
    data
        Examples, ``(examples, *observed_shape)``; treated as draws from ``p*(x)``.
    encoder
        ``x -> (loc, scale)`` for one example, e.g. a :class:`GaussianEncoder`; both
        of shape ``(latent dimension,)``.
    rng_key
        JAX random key.
    num_samples
        Codes drawn per example.
    distortion, observed, reconstruction, model_args, model_kwargs
        As for :func:`rdppl.rd_curve`.
    data_entropy
        The entropy ``H`` of the data distribution in nats, ``"empirical"`` to use
        :func:`empirical_entropy` of ``data`` (discrete data), or ``None`` (no lower
        bound).

    Returns
    -------
    xarray.DataTree
        Group ``variational_bounds`` with ``rate``, ``distortion`` and their
        standard errors over ``(example,)`` (and ``elbo`` with ``"nll"``); root
        attributes ``information_upper`` (mean rate), ``information_lower``
        (``H - mean distortion``, or ``"none"``) and ``data_entropy``.

    Raises
    ------
    ValueError
        If ``num_samples < 2``, the data are empty or not finite, the encoder's
        output does not match the latent dimension, or ``data_entropy`` is invalid.
    """
    start = time.perf_counter()
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")
    if num_samples < 2:
        raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")
    rng_key = validate_rng_key(rng_key)
    target, data = prepare_model(
        model,
        data,
        distortion=distortion,
        observed=observed,
        reconstruction=reconstruction,
        model_args=model_args,
        model_kwargs=model_kwargs,
    )
    entropy = _validate_entropy(data_entropy, data)
    validate_encoder(encoder, target.structure, data[0])
    release_compiled_programs()
    note_program(  # just before compiling: warns at the caller's line
        model,
        target.structure,
        data[0],
        model_args=model_args,
        model_kwargs=model_kwargs,
        distortion=distortion,
    )
    rate, rate_error, distortion_value, distortion_error = _encoder_estimates(
        target,
        encoder,
        rng_key,
        data,
        num_samples,
        target.structure.standard_normal_prior,
    )
    variables = {
        "rate": rate,
        "rate_standard_error": rate_error,
        "distortion": distortion_value,
        "distortion_standard_error": distortion_error,
    }
    if target.structure.distortion == "nll":
        variables["elbo"] = -(rate + distortion_value)
    mean_distortion = float(np.mean(np.asarray(distortion_value, np.float64)))
    attrs = results.run_attrs(
        target.structure,
        None,
        rng_key=rng_key,
        num_chains=num_samples,
        betas=None,
        wall_time=time.perf_counter() - start,
        num_gradient_evaluations=0,
        num_samples=num_samples,
        information_upper=float(np.mean(np.asarray(rate, np.float64))),
        information_lower=None if entropy is None else entropy - mean_distortion,
        data_entropy=entropy,
    )
    group = results.example_group(variables, attrs={"units": "nats"})
    return results.make_tree(
        {"variational_bounds": group}, attrs=attrs, name="variational_bounds"
    )
