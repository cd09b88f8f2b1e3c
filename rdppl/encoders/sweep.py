"""The sweep shared by the trainers: validate, train one model per rate weight, report.

:func:`run_sweep` is the whole of a trainer of :mod:`rdppl.training` except its
signature and documentation: it validates the arguments (raising ``ValueError`` that
names the argument and shows its value), builds one model per rate weight
(:class:`rdppl.encoders.architectures.Architecture`), trains them together
(:func:`rdppl.encoders.optimise.fit_stack` on the loss of
:mod:`rdppl.encoders.objectives`), evaluates them on held-out data, and assembles the
result tree (:mod:`rdppl.results`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jax.typing import ArrayLike

from rdppl import results
from rdppl.encoders import objectives
from rdppl.encoders.architectures import Architecture, parameter_leaves
from rdppl.encoders.echo import echo_clip
from rdppl.encoders.optimise import fit_stack
from rdppl.numerics.diagnostics import RDWarning
from rdppl.program.data import validate_data
from rdppl.program.decoders import Likelihood, validate_likelihood
from rdppl.sampler.mappings import release_compiled_programs
from rdppl.validation import validate_count, validate_rng_key
from rdppl.variational import empirical_entropy

__all__ = ["run_sweep"]

Decoder = Callable[[jax.Array], jax.Array]


class _Trainer(NamedTuple):
    group: str
    description: str
    loss: Callable[..., Any]
    evaluate: Callable[..., dict[str, jax.Array]]


# trainer -> its curve group, progress label, loss and evaluation
_TRAINERS = {
    "beta_vae": _Trainer(
        "variational",
        "beta-VAE",
        objectives.beta_vae_loss,
        objectives.evaluate_variational,
    ),
    "echo_autoencoder": _Trainer(
        "echo",
        "Echo autoencoder",
        objectives.echo_autoencoder_loss,
        objectives.evaluate_echo,
    ),
    "amortized_encoder": _Trainer(
        "variational",
        "amortized encoder",
        objectives.amortized_encoder_loss,
        objectives.evaluate_variational,
    ),
}


# --------------------------------------------------------------------------------------
# validation


def _validate_rate_weights(rate_weights: ArrayLike) -> np.ndarray:
    array = np.asarray(rate_weights, dtype=np.float64)
    if array.ndim == 0:
        array = array[None]
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"rate_weights must be a non-empty 1-D array, got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"rate_weights must be finite and positive, got {array}")
    if np.any(np.diff(array) <= 0):
        raise ValueError(f"rate_weights must be strictly increasing, got {array}")
    return array


def _validate_examples(
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


def _validate_data(
    data: ArrayLike,
    eval_data: ArrayLike | None,
    *,
    likelihood: Likelihood,
    batch_size: int,
) -> tuple[jax.Array, jax.Array]:
    """Training and evaluation examples, and a batch size the training set allows."""
    train = _validate_examples(data, name="data", likelihood=likelihood)
    evaluation = (
        train
        if eval_data is None
        else _validate_examples(eval_data, name="eval_data", likelihood=likelihood)
    )
    validate_count(batch_size, "batch_size")
    if batch_size > train.shape[0]:
        raise ValueError(
            f"batch_size={batch_size} exceeds the number of training examples "
            f"({train.shape[0]}); batches are drawn without replacement"
        )
    return train, evaluation


def _architecture(
    trainer: str,
    train: jax.Array,
    evaluation: jax.Array,
    frozen: Decoder | None,
    *,
    latent_dim: int,
    width_size: int,
    depth: int,
    batch_size: int,
    num_terms: int | None,
    clip: float | None,
) -> Architecture:
    """Check the trainer's own settings and return its architecture."""
    features = train.shape[1]
    if trainer == "amortized_encoder":
        if not callable(frozen):
            raise TypeError(f"decoder must be callable, got {frozen!r}")
        output = eqx.filter_eval_shape(frozen, jnp.zeros(latent_dim))
        if getattr(output, "shape", None) != (features,):
            raise ValueError(
                f"decoder maps a latent of shape ({latent_dim},) to "
                f"{getattr(output, 'shape', output)}, expected ({features},) "
                "(the number of features of data)"
            )
    if trainer == "echo_autoencoder":
        num_terms = batch_size - 1 if num_terms is None else num_terms
        validate_count(num_terms, "num_terms")
        sizes = (("batch_size", batch_size), ("eval_data", evaluation.shape[0]))
        for name, size in sizes:
            if size < num_terms + 1:
                raise ValueError(
                    f"Echo noise with num_terms={num_terms} needs batches of at "
                    f"least {num_terms + 1} examples, but {name} gives {size}"
                )
        clip = echo_clip(num_terms) if clip is None else float(clip)
    return Architecture(
        trainer, features, latent_dim, width_size, depth, num_terms, clip
    )


# --------------------------------------------------------------------------------------
# the sweep, shared by the three trainers


def run_sweep(
    trainer: str,
    data: ArrayLike,
    *,
    frozen: Decoder | None = None,
    rng_key: jax.Array,
    rate_weights: ArrayLike,
    latent_dim: int,
    likelihood: Likelihood,
    scale: float,
    width_size: int,
    depth: int,
    num_steps: int,
    batch_size: int,
    optimizer: optax.GradientTransformation | None,
    eval_data: ArrayLike | None,
    num_eval_samples: int,
    progress: bool,
    num_terms: int | None = None,
    clip: float | None = None,
) -> xr.DataTree:
    """Validate, train one model per rate weight, evaluate, and build the result tree.

    ``trainer`` is ``"beta_vae"``, ``"echo_autoencoder"`` or ``"amortized_encoder"``
    (whose frozen decoder is ``frozen``); every other argument is documented by the
    trainers of :mod:`rdppl.training`. Returns the tree named after ``trainer``.
    """
    rng_key = validate_rng_key(rng_key)
    weights = _validate_rate_weights(rate_weights)
    train, evaluation = _validate_data(
        data, eval_data, likelihood=likelihood, batch_size=batch_size
    )
    for name, value in (
        ("latent_dim", latent_dim),
        ("num_steps", num_steps),
        ("num_eval_samples", num_eval_samples),
    ):
        validate_count(value, name)
    validate_likelihood(likelihood, scale)
    architecture = _architecture(
        trainer,
        train,
        evaluation,
        frozen,
        latent_dim=latent_dim,
        width_size=width_size,
        depth=depth,
        batch_size=batch_size,
        num_terms=num_terms,
        clip=clip,
    )
    spec = _TRAINERS[trainer]
    release_compiled_programs()
    models, curves, wall_times = _fit_and_evaluate(
        spec,
        architecture,
        rng_key,
        weights,
        train,
        evaluation,
        frozen,
        likelihood=likelihood,
        scale=float(scale),
        optimizer=optax.adam(1e-3) if optimizer is None else optimizer,
        num_steps=num_steps,
        batch_size=batch_size,
        num_eval_samples=num_eval_samples,
        progress=progress,
    )
    attrs = {
        "trainer": trainer,
        "objective": objectives.OBJECTIVE,
        "likelihood": likelihood,
        "likelihood_scale": float(scale),
        **architecture.to_attrs(),
        "num_steps": num_steps,
        "batch_size": batch_size,
        "num_eval_samples": num_eval_samples,
        **wall_times,
    }
    if trainer == "echo_autoencoder":
        attrs["training_data_entropy"] = _check_echo_information(
            curves["information"], weights, train
        )
    return _tree(architecture, models, curves, weights, attrs, group=spec.group)


def _check_echo_information(
    information: np.ndarray, weights: np.ndarray, train: jax.Array
) -> float:
    """Warn where Echo's information exceeds the entropy of its noise source.

    Echo's identity ``I = -E log|det S|`` needs the noise to have a density. Its
    noise is built from the training examples, a distribution of entropy
    ``H <= log N``, and ``I(X; Z) <= H``; a larger value means the noise has become
    singular and the formula overstates the information. Returns ``H``.
    """
    entropy = empirical_entropy(train)
    mean_information = np.mean(information, axis=0)  # over examples, per weight
    over = mean_information > entropy
    if np.any(over):
        warnings.warn(
            f"Echo information of {mean_information.max():.3g} nats exceeds the "
            f"entropy of the training data ({entropy:.3g} nats, {train.shape[0]} "
            f"examples) at rate_weight {weights[over].tolist()}: the noise no longer "
            "has a density and the information is overstated there. Use a larger "
            "rate_weight, fewer latents or more training data.",
            RDWarning,
            stacklevel=4,
        )
    return entropy


def _fit_and_evaluate(
    spec: _Trainer,
    architecture: Architecture,
    rng_key: jax.Array,
    weights: np.ndarray,
    train: jax.Array,
    evaluation: jax.Array,
    frozen: Decoder | None,
    *,
    likelihood: Likelihood,
    scale: float,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    batch_size: int,
    num_eval_samples: int,
    progress: bool,
) -> tuple[Any, dict[str, np.ndarray], dict[str, float]]:
    """Initialise, train and evaluate the stack: models, curves, wall times."""
    init_key, train_key, eval_key = jax.random.split(rng_key, 3)
    models = eqx.filter_vmap(architecture.build)(
        jax.random.split(init_key, len(weights))
    )
    start = time.perf_counter()
    models = fit_stack(
        train_key,
        models,
        weights,
        train,
        loss_fn=objectives.Objective(spec.loss, likelihood, scale),
        optimizer=optimizer,
        num_steps=num_steps,
        batch_size=batch_size,
        frozen=frozen,
        progress=progress,
        description=spec.description,
    )
    train_time = time.perf_counter() - start
    start = time.perf_counter()
    curves = spec.evaluate(
        eval_key,
        models,
        frozen,
        evaluation,
        num_samples=num_eval_samples,
        likelihood=likelihood,
        scale=scale,
    )
    curves = {name: np.asarray(values).T for name, values in curves.items()}
    wall_times = {
        "training_wall_time": train_time,
        "evaluation_wall_time": time.perf_counter() - start,
    }
    return models, curves, wall_times


def _tree(
    architecture: Architecture,
    models: tuple[Any, Any],
    curves: dict[str, np.ndarray],
    weights: np.ndarray,
    attrs: dict[str, Any],
    *,
    group: str,
) -> xr.DataTree:
    """The result tree: the curve group and the trained parameters."""
    encoders, decoders = models
    if architecture.trainer == "echo_autoencoder":
        attrs["rate_floor"] = encoders.rate_floor
        attrs["truncation_error"] = encoders.truncation_error
    parts = {"encoder": parameter_leaves(encoders)}
    if architecture.trains_decoder:
        parts["decoder"] = parameter_leaves(decoders)
    parameter_attrs = {
        **architecture.to_attrs(),
        "decoder": "trained" if architecture.trains_decoder else "frozen, not stored",
    }
    return results.trainer_tree(
        architecture.trainer,
        {
            group: results.trainer_curve_group(curves, weights, attrs=attrs),
            results.TRAINED_PARAMETERS_GROUP: results.trained_parameters_group(
                parts, weights, attrs=parameter_attrs
            ),
        },
    )
