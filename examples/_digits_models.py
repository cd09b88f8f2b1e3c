"""Shared parts of gallery examples 03-05 and 10: the VAE and its RD-curve numbers.

Huang et al. (2020, section 6.3-6.4) damage or re-measure a trained VAE ("VAE10" on
real-valued MNIST, Gaussian decoder). Here the same VAE is trained on the 8x8 digits
(pixel / 16, continuous) with :func:`rdppl.train_beta_vae`: a Gaussian decoder of
fixed standard deviation :data:`OBSERVATION_SCALE`, prior ``N(0, I)``, rate weight 1
(the ordinary ELBO). Its RD curves use squared error, as in the paper's RD
experiments, so the tempered posterior ``p(z) exp(-beta ||x - f(z)||^2)`` does not
depend on the observation scale (which only enters ``log p(x)``).

Also here: reading a curve at a temperature or at a rate, with standard errors over
examples (paired, when two models were run on the same examples). ``10_mnist`` trains
the same kind of VAE on 784-pixel MNIST digits, deeper and with its own observation
scale (the ``depth`` and ``scale`` arguments of :func:`train_vae`).
"""

from __future__ import annotations

import _gallery
import jax
import numpy as np
import optax

import rdppl

# Standard deviation of the Gaussian observation model, in pixel/16 units: about the
# root-mean-square reconstruction error of an 8-latent MLP VAE on these digits, so
# the ELBO at rate weight 1 is close to what a learned global variance would give.
OBSERVATION_SCALE = 0.1

# Where the examples read "low rate": 1 nat is inside the part of the curve where the
# trained VAE's distortion falls steeply with rate (it spends ~20 nats at its ELBO).
LOW_RATE_NATS = 1.0

# Huang et al. run RD curves with a sigmoid schedule of radius 10 (appendix C.2).
SIGMOID_RADIUS = 10.0


def train_vae(
    train,
    test,
    *,
    rng_key,
    latent_dim,
    num_steps,
    width,
    progress,
    depth=2,
    scale=OBSERVATION_SCALE,
):
    """A VAE (rate weight 1, Gaussian decoder) on images; returns ``(decoder, tree)``.

    The decoder is an ``equinox.nn.MLP`` from ``z`` to the pixel means (64 for the
    digits) with ``depth`` hidden layers of ``width`` units; the encoder is an MLP of
    the same shape, and the decoder's standard deviation is fixed at ``scale``. The
    tree's ``variational`` group holds the rate and distortion on ``test``.
    """
    tree = rdppl.train_beta_vae(
        train,
        rng_key=rng_key,
        rate_weights=[1.0],
        latent_dim=latent_dim,
        likelihood="gaussian",
        scale=scale,
        width_size=width,
        depth=depth,
        num_steps=num_steps,
        batch_size=128,
        optimizer=optax.adam(1e-3),
        eval_data=test,
        progress=progress,
    )
    (decoder,) = rdppl.trained_decoders(tree)
    return decoder, tree


def squared_error_curve(program, data, *, rng_key, settings, progress, **options):
    """``rdppl.rd_curve`` with squared-error distortion and the gallery's schedule.

    ``settings`` holds ``num_temperatures``, ``beta_max`` and ``num_chains``; extra
    keyword arguments go to ``rd_curve`` (e.g. ``distortion=`` a function). Returns
    the result tree; :func:`curve_of` gives its ``rate_distortion`` dataset.
    """
    schedule = rdppl.sigmoid_schedule(
        settings["num_temperatures"],
        beta_max=settings["beta_max"],
        radius=SIGMOID_RADIUS,
    )
    options.setdefault("distortion", "squared_error")
    result = rdppl.rd_curve(
        program,
        data,
        rng_key=rng_key,
        schedule=schedule,
        num_chains=settings["num_chains"],
        progress=progress,
        **options,
    )
    return result


def curve_of(tree):
    """The ``rate_distortion`` group of an ``rd_curve`` result as a dataset."""
    return tree["rate_distortion"].to_dataset()


def at_beta(curve, beta):
    """Rate and distortion per example at the schedule's temperature nearest ``beta``.

    Returns ``(beta found, rate, distortion)``, the last two of shape ``(examples,)``.
    """
    betas = curve["beta"].values
    index = int(np.argmin(np.abs(np.log(betas[1:]) - np.log(beta)))) + 1
    return (
        float(betas[index]),
        curve["rate"].values[:, index],
        curve["distortion"].values[:, index],
    )


def distortion_at_rate(curve, rate):
    """Distortion per example at a given rate, interpolated along each example's curve.

    The rate grows with ``beta`` along an AIS curve (up to Monte Carlo noise, removed
    by a running maximum), so each example's ``D(R)`` is interpolated linearly; a
    rate outside an example's curve gives ``nan``.
    """
    rates = np.maximum.accumulate(curve["rate"].values, axis=1)
    distortions = curve["distortion"].values
    return np.array(
        [
            np.interp(rate, r, d, left=np.nan, right=np.nan)
            for r, d in zip(rates, distortions, strict=True)
        ]
    )


def paired_difference(a, b):
    """Mean and standard error over examples of ``a - b`` (same examples in both)."""
    return _gallery.mean_and_se(np.asarray(a) - np.asarray(b))


def mean_curve(curve):
    """Mean rate and distortion over examples, for plotting: ``(rate, distortion)``."""
    return curve["rate"].values.mean(axis=0), curve["distortion"].values.mean(axis=0)


def image_grid(ax, images, title, columns=8):
    """Draw 8x8 images (rows of 64 pixels) as one grey-scale grid on ``ax``."""
    images = np.clip(np.asarray(images), 0.0, 1.0).reshape(-1, 8, 8)
    rows = int(np.ceil(len(images) / columns))
    # a light grey frame between the images (ink is dark, paper white)
    canvas = np.full((rows * 9 - 1, columns * 9 - 1), 0.2)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8] = image
    ax.imshow(canvas, cmap="gray_r", vmin=0.0, vmax=1.0)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def sample_images(decoder, latent_dim, rng_key, num, prior_sampler=None):
    """Decoder means of ``num`` codes from ``N(0, I)`` or from ``prior_sampler``."""
    if prior_sampler is None:
        z = jax.random.normal(rng_key, (num, latent_dim))
    else:
        z = prior_sampler(rng_key, num)
    return np.asarray(jax.vmap(decoder)(z))
