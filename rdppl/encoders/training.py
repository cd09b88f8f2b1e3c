"""Train encoders over a sweep of rate weights and report their rate-distortion points.

Three trainers, one result schema:

:func:`train_beta_vae`
    Gaussian encoder and decoder; the rate is ``KL(e(z|x) || N(0, I))`` (Alemi et
    al.). Group ``variational``.
:func:`train_echo_autoencoder`
    Echo channel and decoder; the rate is the exact Echo information (Brekelmans et
    al.). Group ``echo``.
:func:`train_amortized_encoder`
    A Gaussian encoder trained against a *frozen* decoder (Huang et al., section 6.5):
    the variational estimate of that decoder's rate-distortion curve, to compare with
    its AIS curve. Group ``variational``.

Each minimises ``distortion + rate_weight * rate`` (:mod:`rdppl.encoders.objectives`),
one model per rate weight, all trained together
(:func:`rdppl.encoders.optimise.fit_stack`). The rate weight is *not* the inverse
temperature ``beta`` of :func:`rdppl.rd_curve`, which weights the distortion: a point
trained at ``rate_weight`` has slope ``dR/dD = -1 / rate_weight`` and matches AIS at
``beta = 1 / rate_weight``; convert with :func:`rdppl.results.as_inverse_temperature`.

Every trainer returns an ``xarray.DataTree`` named after it, with the curve group over
``(example, rate_weight)`` and the group ``trained_parameters``;
:func:`trained_encoders` and :func:`trained_decoders` rebuild the modules from it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax
import xarray as xr
from jax.typing import ArrayLike

from rdppl.encoders.architectures import trained_decoders, trained_encoders
from rdppl.encoders.sweep import run_sweep
from rdppl.program.decoders import Likelihood

__all__ = [
    "train_amortized_encoder",
    "train_beta_vae",
    "train_echo_autoencoder",
    "trained_decoders",
    "trained_encoders",
]

Decoder = Callable[[jax.Array], jax.Array]


# --------------------------------------------------------------------------------------
# public trainers


def train_beta_vae(
    data: ArrayLike,
    *,
    rng_key: jax.Array,
    rate_weights: ArrayLike,
    latent_dim: int,
    likelihood: Likelihood = "bernoulli",
    scale: float = 1.0,
    width_size: int = 128,
    depth: int = 1,
    num_steps: int = 2000,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
    eval_data: ArrayLike | None = None,
    num_eval_samples: int = 16,
    progress: bool = False,
) -> xr.DataTree:
    """Train one beta-VAE per rate weight and measure its rate and distortion.

    Each VAE has a :class:`~rdppl.variational.GaussianEncoder` and an MLP decoder
    (``latent_dim -> features``, logits for ``"bernoulli"``, mean for ``"gaussian"``),
    prior ``N(0, I)``, and minimises ``distortion + rate_weight * rate`` over
    minibatches, with the analytic rate ``KL(e(z|x) || N(0, I))``.

    Parameters
    ----------
    data
        Training examples, shape ``(examples, features)``; in ``[0, 1]`` for the
        Bernoulli likelihood.
    rng_key
        PRNG key (initialisation, minibatches, noise, evaluation).
    rate_weights
        Strictly increasing, positive weights of the rate. The matching AIS inverse
        temperature is ``1 / rate_weight``.
    latent_dim
        Dimension of ``z``.
    likelihood, scale
        ``"bernoulli"`` (the decoder outputs logits) or ``"gaussian"`` (the decoder
        outputs the mean; standard deviation ``scale``).
    width_size, depth
        Hidden width and number of hidden layers of every MLP.
    num_steps, batch_size
        Optimisation steps, and examples per minibatch (drawn without replacement).
    optimizer
        Optax optimiser; ``optax.adam(1e-3)`` by default.
    eval_data
        Examples on which rate and distortion are reported; ``data`` by default.
    num_eval_samples
        Codes per example for the Monte Carlo distortion.
    progress
        Show a progress bar (``tqdm``) during training.

    Returns
    -------
    xarray.DataTree
        Named ``beta_vae``, with group ``variational`` (``rate``, ``distortion``,
        ``elbo`` over ``(example, rate_weight)``) and group ``trained_parameters``
        (see :func:`trained_encoders`, :func:`trained_decoders`).

    Examples
    --------
    >>> import jax, numpy as np
    >>> data = (np.random.default_rng(0).random((64, 6)) > 0.5).astype(float)
    >>> tree = train_beta_vae(
    ...     data, rng_key=jax.random.key(0), rate_weights=[0.5, 1.0], latent_dim=2,
    ...     num_steps=10, batch_size=16, width_size=8,
    ... )
    >>> sorted(tree["variational"].data_vars), len(trained_decoders(tree))
    (['distortion', 'elbo', 'rate'], 2)
    """
    return run_sweep(
        "beta_vae",
        data,
        rng_key=rng_key,
        rate_weights=rate_weights,
        latent_dim=latent_dim,
        likelihood=likelihood,
        scale=scale,
        width_size=width_size,
        depth=depth,
        num_steps=num_steps,
        batch_size=batch_size,
        optimizer=optimizer,
        eval_data=eval_data,
        num_eval_samples=num_eval_samples,
        progress=progress,
    )


def train_echo_autoencoder(
    data: ArrayLike,
    *,
    rng_key: jax.Array,
    rate_weights: ArrayLike,
    latent_dim: int,
    likelihood: Likelihood = "bernoulli",
    scale: float = 1.0,
    num_terms: int | None = None,
    clip: float | None = None,
    width_size: int = 128,
    depth: int = 1,
    num_steps: int = 2000,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
    eval_data: ArrayLike | None = None,
    num_eval_samples: int = 16,
    progress: bool = False,
) -> xr.DataTree:
    """Train one Echo autoencoder per rate weight; measure information and distortion.

    Each model has an :class:`~rdppl.echo.EchoChannel` (MLP mean and scale networks)
    and an MLP decoder, and minimises ``distortion + rate_weight * information`` with
    the exact Echo information. The noise of each training example is made of the
    other members of its minibatch; at evaluation, of the other evaluation examples.

    Parameters
    ----------
    data
        Training examples, shape ``(examples, features)``.
    rng_key, rate_weights, latent_dim, likelihood, scale
        As in :func:`train_beta_vae`.
    num_terms
        Terms of the Echo series; ``batch_size - 1`` by default (the most a batch
        allows, which gives the lowest rate floor).
    clip
        Clipping factor; :func:`rdppl.echo.echo_clip` of ``num_terms`` by default.
    width_size, depth, num_steps, batch_size, optimizer, num_eval_samples, progress
        As in :func:`train_beta_vae`.
    eval_data
        Examples on which information and distortion are reported (at least
        ``num_terms + 1`` of them); ``data`` by default.

    Returns
    -------
    xarray.DataTree
        Named ``echo_autoencoder``, with group ``echo`` (``information``, exact and
        pointwise, and ``distortion`` over ``(example, rate_weight)``; its attributes
        hold ``num_terms``, ``clip`` and the ``rate_floor`` they imply) and group
        ``trained_parameters``.

    Raises
    ------
    ValueError
        If ``batch_size`` or the evaluation set is smaller than ``num_terms + 1``.
    """
    return run_sweep(
        "echo_autoencoder",
        data,
        rng_key=rng_key,
        rate_weights=rate_weights,
        latent_dim=latent_dim,
        likelihood=likelihood,
        scale=scale,
        width_size=width_size,
        depth=depth,
        num_steps=num_steps,
        batch_size=batch_size,
        optimizer=optimizer,
        eval_data=eval_data,
        num_eval_samples=num_eval_samples,
        progress=progress,
        num_terms=num_terms,
        clip=clip,
    )


def train_amortized_encoder(
    decoder: Decoder,
    data: ArrayLike,
    *,
    rng_key: jax.Array,
    rate_weights: ArrayLike,
    latent_dim: int,
    likelihood: Likelihood = "bernoulli",
    scale: float = 1.0,
    width_size: int = 128,
    depth: int = 1,
    num_steps: int = 2000,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
    eval_data: ArrayLike | None = None,
    num_eval_samples: int = 16,
    progress: bool = False,
) -> xr.DataTree:
    """Variational rate-distortion curve of a frozen decoder (Huang et al., 6.5).

    Trains one :class:`~rdppl.variational.GaussianEncoder` per rate weight to minimise
    ``distortion + rate_weight * rate`` against ``decoder`` with prior ``N(0, I)``; the
    decoder is not updated. Every point lies on or above the decoder's rate-distortion
    curve, which :func:`rdppl.rd_curve` of :func:`rdppl.decoders.decoder_model`
    estimates by AIS (the point at ``rate_weight`` matches the AIS inverse temperature
    ``1 / rate_weight``; see :func:`rdppl.results.as_inverse_temperature`).

    Parameters
    ----------
    decoder
        Callable (usually an Equinox module) mapping ``z`` of shape ``(latent_dim,)``
        to the decoder output for one example.
    data
        Training examples, shape ``(examples, features)``.
    rng_key, rate_weights, latent_dim, likelihood, scale, width_size, depth, \
num_steps, batch_size, optimizer, eval_data, num_eval_samples, progress
        As in :func:`train_beta_vae`.

    Returns
    -------
    xarray.DataTree
        Named ``amortized_encoder``, with group ``variational`` (``rate``,
        ``distortion``, ``elbo`` over ``(example, rate_weight)``) and group
        ``trained_parameters`` holding the encoders only (the decoder is the
        caller's).
    """
    return run_sweep(
        "amortized_encoder",
        data,
        frozen=decoder,
        rng_key=rng_key,
        rate_weights=rate_weights,
        latent_dim=latent_dim,
        likelihood=likelihood,
        scale=scale,
        width_size=width_size,
        depth=depth,
        num_steps=num_steps,
        batch_size=batch_size,
        optimizer=optimizer,
        eval_data=eval_data,
        num_eval_samples=num_eval_samples,
        progress=progress,
    )
