"""The objectives of the trainers, ``distortion + rate_weight * rate``, and their terms.

The distortion is ``-log d(x|z)`` of :func:`rdppl.decoders.observation_distribution`,
the same that AIS measures for :func:`rdppl.decoders.decoder_model`. The rate is

* for a Gaussian encoder, ``KL(e(z|x) || N(0, I))`` (:func:`~rdppl.variational.\
gaussian_rate`), an upper bound on ``I(X; Z)`` (Alemi et al.);
* for an Echo channel, the exact information ``-sum_j log s_j(x)`` (Brekelmans et al.).

Losses act on one model of a stack and one minibatch (the signature that
:func:`rdppl.encoders.optimise.fit_stack` expects once :class:`Objective` binds the
likelihood); evaluations act on a whole stack and return arrays of shape ``(stack,
example)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from rdppl.encoders.echo import EchoChannel
from rdppl.encoders.optimise import stack_size
from rdppl.program.decoders import Likelihood, observation_distribution
from rdppl.variational import GaussianEncoder, encoder_rate_distortion, gaussian_rate

__all__ = [
    "OBJECTIVE",
    "Objective",
    "amortized_encoder_loss",
    "beta_vae_loss",
    "echo_autoencoder_loss",
    "evaluate_echo",
    "evaluate_variational",
]

OBJECTIVE = "distortion + rate_weight * rate"

Decoder = Callable[[jax.Array], jax.Array]
# (loss, (distortion, rate)) for one model and one minibatch
Loss = tuple[jax.Array, tuple[jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class Objective:
    """A loss with its observation model bound, hashable by value.

    Calling it as ``objective(model, frozen, rate_weight, batch, key)`` calls
    ``loss(..., likelihood=likelihood, scale=scale)``. Being equal for equal settings,
    it keeps the compilation cache of :func:`rdppl.encoders.optimise.fit_stack` warm
    across calls.

    Parameters
    ----------
    loss
        One of the module-level losses of :mod:`rdppl.encoders.objectives`.
    likelihood
        ``"bernoulli"`` or ``"gaussian"``.
    scale
        Standard deviation of the Gaussian likelihood.
    """

    loss: Callable[..., Loss]
    likelihood: Likelihood
    scale: float

    def __call__(
        self,
        model: Any,
        frozen: Any,
        rate_weight: jax.Array,
        batch: jax.Array,
        key: jax.Array,
    ) -> Loss:
        """The loss of one model on one minibatch, and its two terms."""
        return self.loss(
            model,
            frozen,
            rate_weight,
            batch,
            key,
            likelihood=self.likelihood,
            scale=self.scale,
        )


def _distortion(
    decoder: Decoder,
    z: jax.Array,
    x: jax.Array,
    *,
    likelihood: Likelihood,
    scale: float,
) -> jax.Array:
    """``-log d(x|z)`` for each row of a batch of codes ``z`` and examples ``x``."""
    output = jax.vmap(decoder)(z)
    return -observation_distribution(
        output, likelihood=likelihood, scale=scale
    ).log_prob(x)


def _gaussian_loss(
    encoder: GaussianEncoder,
    decoder: Decoder,
    rate_weight: jax.Array,
    batch: jax.Array,
    key: jax.Array,
    *,
    likelihood: Likelihood,
    scale: float,
) -> Loss:
    loc, encoder_scale = jax.vmap(encoder)(batch)
    z = loc + encoder_scale * jax.random.normal(key, loc.shape, loc.dtype)
    mean_distortion = jnp.mean(
        _distortion(decoder, z, batch, likelihood=likelihood, scale=scale)
    )
    rate = jnp.mean(gaussian_rate(loc, encoder_scale))
    return mean_distortion + rate_weight * rate, (mean_distortion, rate)


def beta_vae_loss(
    model: tuple[GaussianEncoder, Decoder],
    frozen: None,
    rate_weight: jax.Array,
    batch: jax.Array,
    key: jax.Array,
    *,
    likelihood: Likelihood,
    scale: float,
) -> Loss:
    """``D + rate_weight * KL`` of an (encoder, decoder) pair, one reparameterised draw.

    Parameters
    ----------
    model
        ``(encoder, decoder)``, both trained.
    frozen
        Unused (``None``).
    rate_weight
        Weight of the rate.
    batch
        Examples, shape ``(batch, features)``.
    key
        PRNG key for the codes.
    likelihood, scale
        Observation model of the decoder.

    Returns
    -------
    loss, (distortion, rate)
        Means over the batch.
    """
    encoder, decoder = model
    return _gaussian_loss(
        encoder, decoder, rate_weight, batch, key, likelihood=likelihood, scale=scale
    )


def amortized_encoder_loss(
    model: tuple[GaussianEncoder, None],
    frozen: Decoder,
    rate_weight: jax.Array,
    batch: jax.Array,
    key: jax.Array,
    *,
    likelihood: Likelihood,
    scale: float,
) -> Loss:
    """``D + rate_weight * KL`` of a trained encoder against a frozen decoder.

    Parameters are those of :func:`beta_vae_loss`, except that ``model`` is
    ``(encoder, None)`` and ``frozen`` is the decoder, which is not updated.

    Returns
    -------
    loss, (distortion, rate)
        Means over the batch.
    """
    encoder, _ = model
    return _gaussian_loss(
        encoder, frozen, rate_weight, batch, key, likelihood=likelihood, scale=scale
    )


def echo_autoencoder_loss(
    model: tuple[EchoChannel, Decoder],
    frozen: None,
    rate_weight: jax.Array,
    batch: jax.Array,
    key: jax.Array,
    *,
    likelihood: Likelihood,
    scale: float,
) -> Loss:
    """``D + rate_weight * I`` of an Echo channel and decoder, ``I`` exact.

    The noise of each example is made of the other members of ``batch``. Parameters
    are those of :func:`beta_vae_loss`, with ``model = (channel, decoder)``.

    Returns
    -------
    loss, (distortion, information)
        Means over the batch.
    """
    channel, decoder = model
    z = channel(batch, key=key)
    mean_distortion = jnp.mean(
        _distortion(decoder, z, batch, likelihood=likelihood, scale=scale)
    )
    information = jnp.mean(channel.information(batch))
    return mean_distortion + rate_weight * information, (mean_distortion, information)


@eqx.filter_jit
def evaluate_variational(
    rng_key: jax.Array,
    models: tuple[GaussianEncoder, Any],
    frozen: Decoder | None,
    data: jax.Array,
    *,
    num_samples: int,
    likelihood: Likelihood,
    scale: float,
) -> dict[str, jax.Array]:
    """Rate, Monte Carlo distortion and ELBO of a stack of Gaussian encoders.

    Parameters
    ----------
    rng_key
        PRNG key for the codes.
    models
        ``(encoders, decoders)`` stacked along a leading axis; ``decoders`` is
        ``None`` when ``frozen`` holds the one decoder they share.
    frozen
        The shared decoder, or ``None``.
    data
        Examples, shape ``(example, features)``.
    num_samples
        Codes per example for the distortion.
    likelihood, scale
        Observation model of the decoder.

    Returns
    -------
    dict
        ``rate``, ``distortion`` and ``elbo = -(rate + distortion)``, each of shape
        ``(stack, example)``.
    """
    encoders, decoders = models
    keys = jax.random.split(rng_key, stack_size(encoders))

    def one(key, encoder, decoder):
        rate, mean_distortion, _ = encoder_rate_distortion(
            key,
            encoder,
            decoder,
            data,
            num_samples=num_samples,
            likelihood=likelihood,
            scale=scale,
        )
        return rate, mean_distortion

    if decoders is None:
        decoders, decoder_axis = frozen, None
    else:
        decoder_axis = eqx.if_array(0)
    rate, mean_distortion = eqx.filter_vmap(
        one, in_axes=(0, eqx.if_array(0), decoder_axis)
    )(keys, encoders, decoders)
    return {
        "rate": rate,
        "distortion": mean_distortion,
        "elbo": -(rate + mean_distortion),
    }


@eqx.filter_jit
def evaluate_echo(
    rng_key: jax.Array,
    models: tuple[EchoChannel, Any],
    frozen: None,
    data: jax.Array,
    *,
    num_samples: int,
    likelihood: Likelihood,
    scale: float,
) -> dict[str, jax.Array]:
    """Exact information and Monte Carlo distortion of a stack of Echo autoencoders.

    The whole of ``data`` is the batch that supplies the Echo noise. Parameters are
    those of :func:`evaluate_variational`, with ``models = (channels, decoders)``.

    Returns
    -------
    dict
        ``information`` and ``distortion``, each of shape ``(stack, example)``.
    """
    channels, decoders = models
    keys = jax.random.split(rng_key, stack_size(channels))

    def one(key, channel, decoder):
        def draw(carry, draw_key):
            z = channel(data, key=draw_key)
            return carry + _distortion(
                decoder, z, data, likelihood=likelihood, scale=scale
            ), None

        total, _ = jax.lax.scan(
            draw,
            jnp.zeros(data.shape[0], data.dtype),
            jax.random.split(key, num_samples),
        )
        return channel.information(data), total / num_samples

    information, mean_distortion = eqx.filter_vmap(one)(keys, channels, decoders)
    return {"information": information, "distortion": mean_distortion}
