"""Train encoders over a sweep of ``beta`` and report their rate-distortion points.

Three trainers, one result schema:

:func:`train_beta_vae`
    Gaussian encoder and decoder, objective ``D + beta R`` with the analytic
    ``R = KL(e(z|x) || N(0, I))`` (Alemi et al.). Group ``variational``.
:func:`train_echo_autoencoder`
    Echo channel and decoder, objective ``D + beta I`` with the exact Echo information
    (Brekelmans et al.). Group ``echo``.
:func:`train_amortized_encoder`
    A Gaussian encoder trained per ``beta`` against a *frozen* decoder (Huang et al.,
    section 6.5): the variational estimate of that decoder's rate-distortion curve, to
    compare with its AIS curve. Group ``variational``.

In all three ``beta`` multiplies the rate: the objective is ``D + beta * R``, so a point
trained at ``beta`` has slope ``dR/dD = -1/beta`` and corresponds to the AIS inverse
temperature ``1/beta`` of :func:`rdppl.rd_curve` (which weights the distortion). The
models for all betas are trained together (``vmap`` over ``beta``), with Optax.

Every trainer returns a :class:`TrainedSweep`: the trained modules, one per ``beta``,
and an ``xarray.DataTree`` whose group has variables over ``(example, beta)``, the same
dimensions and coordinates as the ``rate_distortion`` group of :func:`rdppl.rd_curve`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jax.typing import ArrayLike
from tqdm.auto import tqdm

from rdppl import results
from rdppl.decoders import Likelihood, observation_distribution, validate_likelihood
from rdppl.echo import EchoChannel
from rdppl.validation import validate_count, validate_data, validate_rng_key
from rdppl.variational import GaussianEncoder, encoder_rate_distortion, gaussian_rate

__all__ = [
    "TrainedSweep",
    "train_amortized_encoder",
    "train_beta_vae",
    "train_echo_autoencoder",
]

_OBJECTIVE = "distortion + beta * rate"
_NUM_PROGRESS_CHUNKS = 20

Decoder = Callable[[jax.Array], jax.Array]
# loss(model, frozen, beta, batch, key, likelihood, scale) -> (loss, (distortion, rate))
# for one beta and one minibatch; module-level functions, so jit caches stay warm.
LossFn = Callable[..., tuple[jax.Array, Any]]


class TrainedSweep(NamedTuple):
    """Modules trained over a sweep of ``beta``, and their rate-distortion points.

    Attributes
    ----------
    encoders
        One encoder per ``beta`` (:class:`~rdppl.variational.GaussianEncoder` or
        :class:`~rdppl.echo.EchoChannel`), in the order of the ``beta`` coordinate.
    decoders
        One decoder per ``beta`` (the same frozen decoder repeated for
        :func:`train_amortized_encoder`).
    tree
        ``xarray.DataTree`` with one group, ``variational`` or ``echo``.
    """

    encoders: tuple[Any, ...]
    decoders: tuple[Any, ...]
    tree: xr.DataTree


# --------------------------------------------------------------------------------------
# validation


def _validate_betas(betas: ArrayLike) -> np.ndarray:
    array = np.asarray(betas, dtype=np.float64)
    if array.ndim == 0:
        array = array[None]
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"betas must be a non-empty 1-D array, got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"betas must be finite and non-negative, got {array}")
    if np.any(np.diff(array) <= 0):
        raise ValueError(f"betas must be strictly increasing, got {array}")
    return array


def _validate_training_data(
    data: ArrayLike, *, name: str, likelihood: Likelihood
) -> jax.Array:
    array = validate_data(data, name=name)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must have shape (examples, features), got shape {array.shape}"
        )
    array = array.astype(jnp.result_type(float))
    if likelihood == "bernoulli" and not bool(jnp.all((array >= 0) & (array <= 1))):
        raise ValueError(
            f"{name} must lie in [0, 1] for the bernoulli likelihood, got values in "
            f"[{float(array.min())}, {float(array.max())}]"
        )
    return array


def _validate_settings(
    *,
    latent_dim: int,
    num_steps: int,
    batch_size: int,
    num_eval_samples: int,
    data: jax.Array,
    likelihood: Likelihood,
    scale: float,
) -> None:
    validate_count(latent_dim, "latent_dim")
    validate_count(num_steps, "num_steps")
    validate_count(batch_size, "batch_size")
    validate_count(num_eval_samples, "num_eval_samples")
    validate_likelihood(likelihood, scale)
    if batch_size > data.shape[0]:
        raise ValueError(
            f"batch_size={batch_size} exceeds the number of training examples "
            f"({data.shape[0]}); batches are drawn without replacement"
        )


# --------------------------------------------------------------------------------------
# the training loop, shared by the three trainers


@eqx.filter_jit
def _train_chunk(
    params: Any,
    opt_state: Any,
    static: Any,
    frozen: Any,
    betas: jax.Array,
    data: jax.Array,
    keys: jax.Array,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    batch_size: int,
    likelihood: Likelihood,
    scale: float,
) -> tuple[Any, Any, jax.Array]:
    """``keys.shape[0]`` optimisation steps of every beta's model, with ``lax.scan``."""
    num_examples = data.shape[0]

    def one_model(p: Any, state: Any, beta: jax.Array, key: jax.Array):
        batch_key, loss_key = jax.random.split(key)
        index = jax.random.choice(batch_key, num_examples, (batch_size,), replace=False)
        batch = data[index]

        def objective(p: Any) -> tuple[jax.Array, Any]:
            model = eqx.combine(p, static)
            return loss_fn(model, frozen, beta, batch, loss_key, likelihood, scale)

        (loss, _), grads = jax.value_and_grad(objective, has_aux=True)(p)
        updates, state = optimizer.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    def step(carry: tuple[Any, Any], step_keys: jax.Array):
        p, state = carry
        p, state, loss = jax.vmap(one_model)(p, state, betas, step_keys)
        return (p, state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), keys)
    return params, opt_state, losses


def _fit(
    rng_key: jax.Array,
    models: Any,
    frozen: Any,
    betas: np.ndarray,
    data: jax.Array,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    batch_size: int,
    likelihood: Likelihood,
    scale: float,
    progress: bool,
    description: str,
) -> Any:
    """Train a stack of models (leading axis: beta) and return the trained stack."""
    params, static = eqx.partition(models, eqx.is_array)
    opt_state = jax.vmap(optimizer.init)(params)
    beta_array = jnp.asarray(betas, dtype=jnp.result_type(float))
    chunk = max(1, math.ceil(num_steps / _NUM_PROGRESS_CHUNKS))
    keys = jax.random.split(rng_key, (num_steps, len(betas)))
    with tqdm(
        total=num_steps, desc=description, disable=not progress, unit="step"
    ) as bar:
        for start in range(0, num_steps, chunk):
            stop = min(start + chunk, num_steps)
            params, opt_state, losses = _train_chunk(
                params,
                opt_state,
                static,
                frozen,
                beta_array,
                data,
                keys[start:stop],
                loss_fn=loss_fn,
                optimizer=optimizer,
                batch_size=batch_size,
                likelihood=likelihood,
                scale=scale,
            )
            mean_loss = float(jnp.mean(losses[-1]))
            if not math.isfinite(mean_loss):
                raise FloatingPointError(
                    f"{description}: the loss became {mean_loss} at step {stop}; "
                    "lower the learning rate or check the data"
                )
            bar.update(stop - start)
            bar.set_postfix(loss=f"{mean_loss:.3f}")
    return eqx.combine(params, static)


def _unstack(models: Any, num: int) -> tuple[Any, ...]:
    params, static = eqx.partition(models, eqx.is_array)
    return tuple(
        eqx.combine(jax.tree.map(lambda leaf, i=i: leaf[i], params), static)
        for i in range(num)
    )


# --------------------------------------------------------------------------------------
# losses (one beta, one batch)


def _distortion(
    decoder: Decoder, z: jax.Array, x: jax.Array, likelihood: Likelihood, scale: float
) -> jax.Array:
    """``-log p(x|z)`` for each row of a batch."""
    output = jax.vmap(decoder)(z)
    return -observation_distribution(
        output, likelihood=likelihood, scale=scale
    ).log_prob(x)


def _gaussian_loss(
    encoder: GaussianEncoder,
    decoder: Decoder,
    beta: jax.Array,
    batch: jax.Array,
    key: jax.Array,
    likelihood: Likelihood,
    scale: float,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    loc, enc_scale = jax.vmap(encoder)(batch)
    z = loc + enc_scale * jax.random.normal(key, loc.shape, loc.dtype)
    distortion = jnp.mean(_distortion(decoder, z, batch, likelihood, scale))
    rate = jnp.mean(gaussian_rate(loc, enc_scale))
    return distortion + beta * rate, (distortion, rate)


def _vae_loss(model, frozen, beta, batch, key, likelihood, scale):
    encoder, decoder = model
    return _gaussian_loss(encoder, decoder, beta, batch, key, likelihood, scale)


def _amortized_loss(encoder, decoder, beta, batch, key, likelihood, scale):
    return _gaussian_loss(encoder, decoder, beta, batch, key, likelihood, scale)


def _echo_loss(model, frozen, beta, batch, key, likelihood, scale):
    channel, decoder = model
    z = channel(batch, key=key)
    distortion = jnp.mean(_distortion(decoder, z, batch, likelihood, scale))
    information = jnp.mean(channel.information(batch))
    return distortion + beta * information, (distortion, information)


# --------------------------------------------------------------------------------------
# evaluation


@eqx.filter_jit
def _evaluate_gaussian(
    rng_key: jax.Array,
    encoders: GaussianEncoder,
    decoders: Any,
    data: jax.Array,
    *,
    num_samples: int,
    likelihood: Likelihood,
    scale: float,
    shared_decoder: bool,
) -> tuple[jax.Array, jax.Array]:
    """Rate and distortion, shape ``(beta, example)``, for a stack of encoders."""
    num = jax.tree.leaves(eqx.filter(encoders, eqx.is_array))[0].shape[0]
    keys = jax.random.split(rng_key, num)

    def one(key, encoder, decoder):
        rate, distortion, _ = encoder_rate_distortion(
            key,
            encoder,
            decoder,
            data,
            num_samples=num_samples,
            likelihood=likelihood,
            scale=scale,
        )
        return rate, distortion

    decoder_axis = None if shared_decoder else eqx.if_array(0)
    return eqx.filter_vmap(one, in_axes=(0, eqx.if_array(0), decoder_axis))(
        keys, encoders, decoders
    )


@eqx.filter_jit
def _evaluate_echo(
    rng_key: jax.Array,
    channels: EchoChannel,
    decoders: Any,
    data: jax.Array,
    *,
    num_samples: int,
    likelihood: Likelihood,
    scale: float,
) -> tuple[jax.Array, jax.Array]:
    """Exact information and Monte Carlo distortion, shape ``(beta, example)``.

    The whole evaluation set is the batch that supplies the Echo noise.
    """
    num = jax.tree.leaves(eqx.filter(channels, eqx.is_array))[0].shape[0]
    keys = jax.random.split(rng_key, num)

    def one(key, channel, decoder):
        def draw(carry, draw_key):
            z = channel(data, key=draw_key)
            return carry + _distortion(decoder, z, data, likelihood, scale), None

        total, _ = jax.lax.scan(
            draw,
            jnp.zeros(data.shape[0], data.dtype),
            jax.random.split(key, num_samples),
        )
        return channel.information(data), total / num_samples

    return eqx.filter_vmap(one)(keys, channels, decoders)


def _group_attrs(trainer: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "trainer": trainer,
        "objective": _OBJECTIVE,
        "ais_inverse_temperature": "1 / beta",
        **settings,
    }


def _tree(group_name: str, group: xr.Dataset, trainer: str) -> xr.DataTree:
    return results.make_tree(
        {group_name: group},
        attrs={"trainer": trainer, **results.versions()},
        name=trainer,
    )


def _variational_tree(
    trainer: str,
    eval_key: jax.Array,
    encoders: Any,
    decoders: Any,
    evaluation: jax.Array,
    beta_values: np.ndarray,
    *,
    shared_decoder: bool,
    settings: dict[str, Any],
    train_time: float,
) -> xr.DataTree:
    """Evaluate trained Gaussian encoders and build the ``variational`` tree."""
    start = time.perf_counter()
    rate, distortion = _evaluate_gaussian(
        eval_key,
        encoders,
        decoders,
        evaluation,
        num_samples=settings["num_eval_samples"],
        likelihood=settings["likelihood"],
        scale=settings["likelihood_scale"],
        shared_decoder=shared_decoder,
    )
    rate, distortion = np.asarray(rate).T, np.asarray(distortion).T
    eval_time = time.perf_counter() - start
    group = results.curve_group(
        {"rate": rate, "distortion": distortion, "elbo": -(rate + distortion)},
        beta_values,
        attrs=_group_attrs(
            trainer,
            {
                **settings,
                "training_wall_time": train_time,
                "evaluation_wall_time": eval_time,
            },
        ),
    )
    return _tree("variational", group, trainer)


def _mlp(in_size: int, out_size: int, width_size: int, depth: int, key: jax.Array):
    return eqx.nn.MLP(in_size, out_size, width_size, depth, key=key)


# --------------------------------------------------------------------------------------
# public trainers


def train_beta_vae(
    data: ArrayLike,
    *,
    betas: ArrayLike,
    latent_dim: int,
    rng_key: jax.Array,
    likelihood: Likelihood = "bernoulli",
    scale: float = 1.0,
    width_size: int = 128,
    depth: int = 1,
    num_steps: int = 2000,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
    eval_data: ArrayLike | None = None,
    num_eval_samples: int = 16,
    progress: bool = True,
) -> TrainedSweep:
    """Train one beta-VAE per ``beta`` and measure its rate and distortion.

    Each VAE has a :class:`~rdppl.variational.GaussianEncoder` and an MLP decoder
    (``latent_dim -> features``, logits for ``"bernoulli"``, mean for ``"gaussian"``),
    prior ``N(0, I)``, and minimises ``D + beta * R`` over minibatches.

    Parameters
    ----------
    data
        Training examples, shape ``(examples, features)``; in ``[0, 1]`` for the
        Bernoulli likelihood.
    betas
        Strictly increasing, non-negative weights of the rate.
    latent_dim
        Dimension of ``z``.
    rng_key
        PRNG key (initialisation, minibatches, noise, evaluation).
    likelihood
        ``"bernoulli"`` or ``"gaussian"`` (standard deviation ``scale``).
    scale
        Standard deviation of the Gaussian likelihood.
    width_size, depth
        Hidden width and number of hidden layers of every MLP.
    num_steps
        Optimisation steps.
    batch_size
        Minibatch size (drawn without replacement).
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
    TrainedSweep
        Encoders, decoders, and a tree with group ``variational``: ``rate``,
        ``distortion``, ``elbo`` over ``(example, beta)``.

    Examples
    --------
    >>> import jax, numpy as np
    >>> data = (np.random.default_rng(0).random((64, 6)) > 0.5).astype(float)
    >>> sweep = train_beta_vae(
    ...     data, betas=[0.5, 1.0], latent_dim=2, rng_key=jax.random.key(0),
    ...     num_steps=10, batch_size=16, width_size=8, progress=False,
    ... )
    >>> sorted(sweep.tree["variational"].data_vars)
    ['distortion', 'elbo', 'rate']
    """
    rng_key = validate_rng_key(rng_key)
    beta_values = _validate_betas(betas)
    train = _validate_training_data(data, name="data", likelihood=likelihood)
    evaluation = (
        train
        if eval_data is None
        else _validate_training_data(eval_data, name="eval_data", likelihood=likelihood)
    )
    _validate_settings(
        latent_dim=latent_dim,
        num_steps=num_steps,
        batch_size=batch_size,
        num_eval_samples=num_eval_samples,
        data=train,
        likelihood=likelihood,
        scale=scale,
    )
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    features = train.shape[1]
    init_key, train_key, eval_key = jax.random.split(rng_key, 3)

    def make(key: jax.Array) -> tuple[GaussianEncoder, eqx.nn.MLP]:
        k1, k2, k3 = jax.random.split(key, 3)
        encoder = GaussianEncoder(
            _mlp(features, latent_dim, width_size, depth, k1),
            _mlp(features, latent_dim, width_size, depth, k2),
            latent_dim=latent_dim,
        )
        return encoder, _mlp(latent_dim, features, width_size, depth, k3)

    models = eqx.filter_vmap(make)(jax.random.split(init_key, len(beta_values)))
    start = time.perf_counter()
    models = _fit(
        train_key,
        models,
        None,
        beta_values,
        train,
        loss_fn=_vae_loss,
        optimizer=optimizer,
        num_steps=num_steps,
        batch_size=batch_size,
        likelihood=likelihood,
        scale=float(scale),
        progress=progress,
        description="beta-VAE",
    )
    train_time = time.perf_counter() - start
    encoders, decoders = models
    settings = {
        "likelihood": likelihood,
        "likelihood_scale": float(scale),
        "latent_dim": latent_dim,
        "width_size": width_size,
        "depth": depth,
        "num_steps": num_steps,
        "batch_size": batch_size,
        "num_eval_samples": num_eval_samples,
    }
    num = len(beta_values)
    return TrainedSweep(
        encoders=_unstack(encoders, num),
        decoders=_unstack(decoders, num),
        tree=_variational_tree(
            "beta_vae",
            eval_key,
            encoders,
            decoders,
            evaluation,
            beta_values,
            shared_decoder=False,
            settings=settings,
            train_time=train_time,
        ),
    )


def train_echo_autoencoder(
    data: ArrayLike,
    *,
    betas: ArrayLike,
    latent_dim: int,
    rng_key: jax.Array,
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
    progress: bool = True,
) -> TrainedSweep:
    """Train one Echo autoencoder per ``beta`` and measure information and distortion.

    Each model has an :class:`~rdppl.echo.EchoChannel` (MLP mean and scale networks)
    and an MLP decoder, and minimises ``D + beta * I`` with the exact Echo information
    ``I``. The noise of each training example is made of the other members of its
    minibatch; at evaluation, of the other evaluation examples.

    Parameters
    ----------
    data
        Training examples, shape ``(examples, features)``.
    betas
        Strictly increasing, non-negative weights of the information.
    latent_dim
        Dimension of ``z``.
    rng_key
        PRNG key.
    likelihood, scale
        Observation model of the decoder (see :func:`train_beta_vae`).
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
    TrainedSweep
        Channels, decoders, and a tree with group ``echo``: ``information`` (exact,
        pointwise) and ``distortion`` over ``(example, beta)``. Its attributes hold
        ``num_terms``, ``clip`` and the ``rate_floor`` they imply.

    Raises
    ------
    ValueError
        If ``batch_size`` or the evaluation set is smaller than ``num_terms + 1``.
    """
    rng_key = validate_rng_key(rng_key)
    beta_values = _validate_betas(betas)
    train = _validate_training_data(data, name="data", likelihood=likelihood)
    evaluation = (
        train
        if eval_data is None
        else _validate_training_data(eval_data, name="eval_data", likelihood=likelihood)
    )
    _validate_settings(
        latent_dim=latent_dim,
        num_steps=num_steps,
        batch_size=batch_size,
        num_eval_samples=num_eval_samples,
        data=train,
        likelihood=likelihood,
        scale=scale,
    )
    num_terms = batch_size - 1 if num_terms is None else num_terms
    validate_count(num_terms, "num_terms")
    for name, size in (("batch_size", batch_size), ("eval_data", evaluation.shape[0])):
        if size < num_terms + 1:
            raise ValueError(
                f"Echo noise with num_terms={num_terms} needs batches of at least "
                f"{num_terms + 1} examples, but {name} gives {size}"
            )
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    features = train.shape[1]
    init_key, train_key, eval_key = jax.random.split(rng_key, 3)

    def make(key: jax.Array) -> tuple[EchoChannel, eqx.nn.MLP]:
        k1, k2, k3 = jax.random.split(key, 3)
        channel = EchoChannel(
            _mlp(features, latent_dim, width_size, depth, k1),
            _mlp(features, latent_dim, width_size, depth, k2),
            latent_dim=latent_dim,
            num_terms=num_terms,
            clip=clip,
        )
        return channel, _mlp(latent_dim, features, width_size, depth, k3)

    models = eqx.filter_vmap(make)(jax.random.split(init_key, len(beta_values)))
    start = time.perf_counter()
    models = _fit(
        train_key,
        models,
        None,
        beta_values,
        train,
        loss_fn=_echo_loss,
        optimizer=optimizer,
        num_steps=num_steps,
        batch_size=batch_size,
        likelihood=likelihood,
        scale=float(scale),
        progress=progress,
        description="Echo autoencoder",
    )
    train_time = time.perf_counter() - start
    start = time.perf_counter()
    channels, decoders = models
    information, distortion = _evaluate_echo(
        eval_key,
        channels,
        decoders,
        evaluation,
        num_samples=num_eval_samples,
        likelihood=likelihood,
        scale=scale,
    )
    information, distortion = np.asarray(information).T, np.asarray(distortion).T
    eval_time = time.perf_counter() - start
    group = results.curve_group(
        {"information": information, "distortion": distortion},
        beta_values,
        attrs=_group_attrs(
            "echo_autoencoder",
            {
                "likelihood": likelihood,
                "likelihood_scale": float(scale),
                "latent_dim": latent_dim,
                "num_terms": num_terms,
                "clip": channels.clip,
                "rate_floor": channels.rate_floor,
                "truncation_error": channels.truncation_error,
                "width_size": width_size,
                "depth": depth,
                "num_steps": num_steps,
                "batch_size": batch_size,
                "num_eval_samples": num_eval_samples,
                "training_wall_time": train_time,
                "evaluation_wall_time": eval_time,
            },
        ),
    )
    num = len(beta_values)
    return TrainedSweep(
        encoders=_unstack(channels, num),
        decoders=_unstack(decoders, num),
        tree=_tree("echo", group, "echo_autoencoder"),
    )


def train_amortized_encoder(
    decoder: Decoder,
    data: ArrayLike,
    *,
    betas: ArrayLike,
    latent_dim: int,
    rng_key: jax.Array,
    likelihood: Likelihood = "bernoulli",
    scale: float = 1.0,
    width_size: int = 128,
    depth: int = 1,
    num_steps: int = 2000,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
    eval_data: ArrayLike | None = None,
    num_eval_samples: int = 16,
    progress: bool = True,
) -> TrainedSweep:
    """Variational rate-distortion curve of a frozen decoder (Huang et al., 6.5).

    Trains one :class:`~rdppl.variational.GaussianEncoder` per ``beta`` to minimise
    ``D + beta * R`` against ``decoder`` with prior ``N(0, I)``; the decoder is not
    updated. Every point lies on or above the decoder's rate-distortion curve, which
    :func:`rdppl.rd_curve` of :func:`rdppl.decoders.decoder_model` estimates by AIS
    (the point at ``beta`` here matches AIS inverse temperature ``1 / beta``).

    Parameters
    ----------
    decoder
        Callable (usually an Equinox module) mapping ``z`` of shape ``(latent_dim,)``
        to the decoder output for one example.
    data
        Training examples, shape ``(examples, features)``.
    betas, latent_dim, rng_key, likelihood, scale, width_size, depth, num_steps, \
batch_size, optimizer, eval_data, num_eval_samples, progress
        As in :func:`train_beta_vae`.

    Returns
    -------
    TrainedSweep
        Encoders, the decoder repeated once per ``beta``, and a tree with group
        ``variational``: ``rate``, ``distortion``, ``elbo`` over ``(example, beta)``.
    """
    rng_key = validate_rng_key(rng_key)
    beta_values = _validate_betas(betas)
    train = _validate_training_data(data, name="data", likelihood=likelihood)
    evaluation = (
        train
        if eval_data is None
        else _validate_training_data(eval_data, name="eval_data", likelihood=likelihood)
    )
    _validate_settings(
        latent_dim=latent_dim,
        num_steps=num_steps,
        batch_size=batch_size,
        num_eval_samples=num_eval_samples,
        data=train,
        likelihood=likelihood,
        scale=scale,
    )
    if not callable(decoder):
        raise TypeError(f"decoder must be callable, got {decoder!r}")
    output = eqx.filter_eval_shape(decoder, jnp.zeros(latent_dim))
    if getattr(output, "shape", None) != (train.shape[1],):
        raise ValueError(
            f"decoder maps a latent of shape ({latent_dim},) to "
            f"{getattr(output, 'shape', output)}, expected ({train.shape[1]},) "
            "(the number of features of data)"
        )
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    features = train.shape[1]
    init_key, train_key, eval_key = jax.random.split(rng_key, 3)

    def make(key: jax.Array) -> GaussianEncoder:
        k1, k2 = jax.random.split(key)
        return GaussianEncoder(
            _mlp(features, latent_dim, width_size, depth, k1),
            _mlp(features, latent_dim, width_size, depth, k2),
            latent_dim=latent_dim,
        )

    encoders = eqx.filter_vmap(make)(jax.random.split(init_key, len(beta_values)))
    start = time.perf_counter()
    encoders = _fit(
        train_key,
        encoders,
        decoder,
        beta_values,
        train,
        loss_fn=_amortized_loss,
        optimizer=optimizer,
        num_steps=num_steps,
        batch_size=batch_size,
        likelihood=likelihood,
        scale=float(scale),
        progress=progress,
        description="amortized encoder",
    )
    train_time = time.perf_counter() - start
    settings = {
        "likelihood": likelihood,
        "likelihood_scale": float(scale),
        "latent_dim": latent_dim,
        "width_size": width_size,
        "depth": depth,
        "num_steps": num_steps,
        "batch_size": batch_size,
        "num_eval_samples": num_eval_samples,
    }
    num = len(beta_values)
    return TrainedSweep(
        encoders=_unstack(encoders, num),
        decoders=(decoder,) * num,
        tree=_variational_tree(
            "amortized_encoder",
            eval_key,
            encoders,
            decoder,
            evaluation,
            beta_values,
            shared_decoder=True,
            settings=settings,
            train_time=train_time,
        ),
    )
