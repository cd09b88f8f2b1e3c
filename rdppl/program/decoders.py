"""Decoders trained with rdppl's encoders, seen as NumPyro generative models.

A decoder is any callable (usually an Equinox module) mapping a latent vector ``z`` to
the parameters of the observation distribution of one example: logits for a Bernoulli
likelihood, the mean for a Gaussian one. :func:`observation_distribution` is the single
definition of that likelihood; the training objectives
(:mod:`rdppl.encoders.objectives`) and
:func:`decoder_model` both use it, so the distortion optimised during training is the
``"nll"`` distortion AIS measures.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike

from rdppl.program.decorator import Model, model

__all__ = [
    "LIKELIHOODS",
    "decoder_model",
    "observation_distribution",
    "reconstruction",
    "validate_likelihood",
]

LIKELIHOODS = ("bernoulli", "gaussian")

Likelihood = Literal["bernoulli", "gaussian"]


def validate_likelihood(likelihood: str, scale: float) -> None:
    """Raise ``ValueError`` unless ``likelihood`` is known and ``scale`` is positive.

    Parameters
    ----------
    likelihood
        ``"bernoulli"`` or ``"gaussian"``.
    scale
        Standard deviation of the Gaussian likelihood (ignored for Bernoulli, but
        still required to be positive and finite).
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if (
        isinstance(scale, bool)
        or not isinstance(scale, numbers.Real)
        or not (math.isfinite(scale) and scale > 0)
    ):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")


class _BernoulliLogits(dist.BernoulliLogits):
    """NumPyro's Bernoulli with logits, usable under strict dtype promotion.

    NumPyro's ``log_prob`` mixes the float observation with booleans (``logical_xor``,
    ``inf * bool``) and its ``sample`` a boolean draw with Python integers, which
    ``jax_numpy_dtype_promotion="strict"`` rejects. Both are NumPyro's own, computed
    with standard promotion; the numbers are unchanged.
    """

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        """NumPyro's ``BernoulliLogits.sample``, with standard dtype promotion."""
        with jax.numpy_dtype_promotion("standard"):
            return super().sample(key, sample_shape)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        """NumPyro's ``BernoulliLogits.log_prob``, with standard dtype promotion."""
        with jax.numpy_dtype_promotion("standard"):
            return super().log_prob(value)


def observation_distribution(
    output: ArrayLike, *, likelihood: Likelihood = "bernoulli", scale: float = 1.0
) -> dist.Distribution:
    """Return the distribution of one example given the decoder output.

    Parameters
    ----------
    output
        Decoder output for one example (or a batch, leading axes are batch axes):
        logits for ``"bernoulli"``, the mean for ``"gaussian"``.
    likelihood
        ``"bernoulli"`` (independent pixels) or ``"gaussian"`` (isotropic, standard
        deviation ``scale``).
    scale
        Standard deviation of the Gaussian likelihood.

    Returns
    -------
    numpyro.distributions.Distribution
        With the last axis of ``output`` as its event dimension.
    """
    output = jnp.asarray(output)
    if likelihood == "bernoulli":
        return _BernoulliLogits(logits=output).to_event(1)
    if likelihood == "gaussian":
        return dist.Normal(output, scale).to_event(1)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")


def reconstruction(output: ArrayLike, *, likelihood: Likelihood = "bernoulli"):
    """Mean of the observation distribution: ``sigmoid(logits)`` or the Gaussian mean.

    Parameters
    ----------
    output
        Decoder output.
    likelihood
        ``"bernoulli"`` or ``"gaussian"``.

    Returns
    -------
    jax.Array
        The reconstruction ``x_hat``, same shape as ``output``.
    """
    output = jnp.asarray(output)
    if likelihood == "bernoulli":
        return jax.nn.sigmoid(output)
    if likelihood == "gaussian":
        return output
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")


class _DecoderProgram(eqx.Module):
    """The NumPyro program of :func:`decoder_model`, as a pytree.

    The decoder's arrays are leaves, so compiled runs take them as arguments: a
    decoder with new weights but the same architecture (a checkpoint, a retrained
    model) reuses the compiled code instead of compiling its weights in as constants.
    """

    decoder: Callable[[jax.Array], jax.Array]
    latent_dim: int = eqx.field(static=True)
    likelihood: Likelihood = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __call__(self, x: jax.Array | None = None) -> None:
        z = numpyro.sample(
            "z", dist.Normal(0.0, 1.0).expand([self.latent_dim]).to_event(1)
        )
        output = self.decoder(z)
        numpyro.deterministic(
            "x_hat", reconstruction(output, likelihood=self.likelihood)
        )
        numpyro.sample(
            "x",
            observation_distribution(
                output, likelihood=self.likelihood, scale=self.scale
            ),
            obs=x,
        )


def decoder_model(
    decoder: Callable[[jax.Array], jax.Array],
    *,
    latent_dim: int,
    likelihood: Likelihood = "bernoulli",
    scale: float = 1.0,
) -> Model:
    """Wrap a decoder as an rdppl model (a NumPyro program for one example).

    The program has a latent site ``"z"`` with prior ``N(0, I_latent_dim)``, a
    deterministic site ``"x_hat"`` with the reconstruction (:func:`reconstruction`)
    and an observed site ``"x"`` with the likelihood
    (:func:`observation_distribution`). Its signature is ``fn(x=None)``.

    Parameters
    ----------
    decoder
        Callable mapping ``z`` of shape ``(latent_dim,)`` to the decoder output for one
        example. Its parameters are held fixed.
    latent_dim
        Dimension of ``z``.
    likelihood
        ``"bernoulli"`` (the decoder outputs logits) or ``"gaussian"`` (the decoder
        outputs the mean).
    scale
        Standard deviation of the Gaussian likelihood.

    Returns
    -------
    rdppl.program.decorator.Model
        Marked with ``observed="x"`` and ``reconstruction="x_hat"``, ready for
        :func:`rdppl.rd_curve`.

    Raises
    ------
    ValueError
        If ``latent_dim`` is not a positive integer or the likelihood is unknown.

    Examples
    --------
    >>> import equinox as eqx, jax
    >>> decoder = eqx.nn.MLP(2, 8, 16, 1, key=jax.random.key(0))
    >>> program = decoder_model(decoder, latent_dim=2)
    >>> program.observed, program.reconstruction
    ('x', 'x_hat')
    """
    if (
        isinstance(latent_dim, bool)
        or not isinstance(latent_dim, int)
        or latent_dim < 1
    ):
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    validate_likelihood(likelihood, scale)
    if not callable(decoder):
        raise TypeError(f"decoder must be callable, got {decoder!r}")

    program = _DecoderProgram(decoder, latent_dim, likelihood, float(scale))
    return model(program, observed="x", reconstruction="x_hat")
