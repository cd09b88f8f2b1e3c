"""Gaussian encoders and the variational bounds of Alemi et al. (MATH.md section 5).

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
from collections.abc import Callable
from typing import Literal, NamedTuple, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.typing import ArrayLike
from numpyro.distributions.kl import kl_divergence

from rdppl.decoders import Likelihood, observation_distribution, validate_likelihood
from rdppl.validation import validate_data, validate_rng_key

__all__ = [
    "GaussianEncoder",
    "VariationalBounds",
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


class VariationalBounds(NamedTuple):
    """Alemi et al.'s quantities for an encoder/decoder pair on a data set.

    Attributes
    ----------
    rate
        ``KL(e(z|x) || N(0, I))`` per example, shape ``(examples,)``.
    distortion
        ``-E_e log d(x|z)`` per example (Monte Carlo), shape ``(examples,)``.
    elbo
        ``-(rate + distortion)`` per example.
    distortion_standard_error
        Monte Carlo standard error of each example's distortion.
    information_upper
        ``mean(rate)``, an upper bound on ``I_e(X; Z)``.
    information_lower
        ``data_entropy - mean(distortion)``, a lower bound on ``I_e(X; Z)``; ``None``
        when no data entropy is known.
    data_entropy
        The entropy ``H`` used, or ``None``.
    """

    rate: jax.Array
    distortion: jax.Array
    elbo: jax.Array
    distortion_standard_error: jax.Array
    information_upper: float
    information_lower: float | None
    data_entropy: float | None


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


def variational_bounds(
    encoder: GaussianEncoder,
    decoder: Callable[[jax.Array], jax.Array],
    data: ArrayLike,
    *,
    rng_key: jax.Array,
    likelihood: Likelihood = "bernoulli",
    scale: float = 1.0,
    num_samples: int = 16,
    data_entropy: float | Literal["empirical"] | None = None,
) -> VariationalBounds:
    """Rate, distortion, ELBO and the bounds ``H - D <= I(X; Z) <= R``.

    Parameters
    ----------
    encoder
        The Gaussian encoder.
    decoder
        Callable mapping ``z`` to the decoder output for one example (see
        :func:`rdppl.decoders.observation_distribution`).
    data
        Examples, shape ``(examples, ...)``; treated as draws from ``p*(x)``.
    rng_key
        PRNG key for the Monte Carlo distortion.
    likelihood
        ``"bernoulli"`` or ``"gaussian"``.
    scale
        Standard deviation of the Gaussian likelihood.
    num_samples
        Codes drawn per example for the distortion.
    data_entropy
        The entropy ``H`` of the data distribution in nats, ``"empirical"`` to use
        :func:`empirical_entropy` of ``data`` (discrete data), or ``None`` (no lower
        bound).

    Returns
    -------
    VariationalBounds
        Per-example ``rate``, ``distortion``, ``elbo`` and the bounds on ``I``.

    Raises
    ------
    ValueError
        If ``num_samples < 2``, the data are empty or not finite, or the likelihood
        is unknown.
    """
    validate_likelihood(likelihood, scale)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")
    if num_samples < 2:
        raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")
    rng_key = validate_rng_key(rng_key)
    data = validate_data(data)
    if data_entropy == "empirical":
        entropy: float | None = empirical_entropy(data)
    elif data_entropy is None:
        entropy = None
    elif isinstance(data_entropy, int | float) and math.isfinite(data_entropy):
        entropy = float(data_entropy)
    else:
        raise ValueError(
            "data_entropy must be a finite number, 'empirical' or None, "
            f"got {data_entropy!r}"
        )
    rate, distortion, standard_error = eqx.filter_jit(encoder_rate_distortion)(
        rng_key,
        encoder,
        decoder,
        data,
        num_samples=num_samples,
        likelihood=likelihood,
        scale=scale,
    )
    mean_distortion = float(jnp.mean(distortion))
    return VariationalBounds(
        rate=rate,
        distortion=distortion,
        elbo=-(rate + distortion),
        distortion_standard_error=standard_error,
        information_upper=float(jnp.mean(rate)),
        information_lower=None if entropy is None else entropy - mean_distortion,
        data_entropy=entropy,
    )
