"""A generic Optax loop that trains a stack of models together, one per weight.

The models are an Equinox pytree whose array leaves carry a leading *stack* axis, one
entry per value of a weight (for the trainers of :mod:`rdppl.training`, the rate
weight). Every step draws, for every model, its own minibatch without replacement and
its own key, and applies one Optax update; the steps run in ``lax.scan`` chunks, between
which a progress bar is updated and the loss is checked. A non-finite loss raises
``FloatingPointError`` (training is a host-side loop, so an exception is the right
report there, unlike inside the jitted AIS kernels).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

__all__ = ["LossFn", "fit_stack", "stack_size", "unstack"]

NUM_PROGRESS_CHUNKS = 20

# loss_fn(model, frozen, weight, batch, key) -> (loss, aux) for one model of the stack
# and one minibatch. It is a static argument of the jitted chunk: pass a hashable value
# (a module-level function, or a frozen dataclass of one) so that the cache stays warm.
LossFn = Callable[[Any, Any, jax.Array, jax.Array, jax.Array], tuple[jax.Array, Any]]


@eqx.filter_jit
def _train_chunk(
    params: Any,
    opt_state: Any,
    static: Any,
    frozen: Any,
    weights: jax.Array,
    data: jax.Array,
    keys: jax.Array,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    batch_size: int,
) -> tuple[Any, Any, jax.Array]:
    """``keys.shape[0]`` optimisation steps of every model, with ``lax.scan``."""
    num_examples = data.shape[0]

    def one_model(p: Any, state: Any, weight: jax.Array, key: jax.Array):
        batch_key, loss_key = jax.random.split(key)
        index = jax.random.choice(batch_key, num_examples, (batch_size,), replace=False)
        batch = data[index]

        def objective(p: Any) -> tuple[jax.Array, Any]:
            return loss_fn(eqx.combine(p, static), frozen, weight, batch, loss_key)

        (loss, _), grads = jax.value_and_grad(objective, has_aux=True)(p)
        # Optax mixes Python floats with its integer step count (e.g. Adam's bias
        # correction), which strict dtype promotion rejects; the numbers are Optax's.
        with jax.numpy_dtype_promotion("standard"):
            updates, state = optimizer.update(grads, state, p)
            return optax.apply_updates(p, updates), state, loss

    def step(carry: tuple[Any, Any], step_keys: jax.Array):
        p, state = carry
        p, state, loss = jax.vmap(one_model)(p, state, weights, step_keys)
        return (p, state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), keys)
    return params, opt_state, losses


def fit_stack(
    rng_key: jax.Array,
    models: Any,
    weights: np.ndarray,
    data: jax.Array,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    batch_size: int,
    frozen: Any = None,
    progress: bool = False,
    description: str = "training",
) -> Any:
    """Train a stack of models, model ``i`` with weight ``weights[i]``.

    Parameters
    ----------
    rng_key
        PRNG key for the minibatches and the keys passed to ``loss_fn``.
    models
        Equinox pytree whose array leaves have a leading axis of size
        ``len(weights)`` (e.g. from ``eqx.filter_vmap`` of a constructor).
    weights
        One weight per model, passed to ``loss_fn``.
    data
        Training examples, shape ``(examples, ...)``; an argument of the compiled
        function, so new data of the same shape does not recompile.
    loss_fn
        ``loss_fn(model, frozen, weight, batch, key) -> (loss, aux)`` for one model;
        hashable (it is a static argument of the compiled step).
    optimizer
        Optax transformation; each model has its own state.
    num_steps
        Optimisation steps.
    batch_size
        Examples per minibatch, drawn without replacement at every step.
    frozen
        A pytree passed unchanged to every ``loss_fn`` call and never updated.
    progress
        Show a ``tqdm`` progress bar with the mean loss.
    description
        Label of the progress bar and of errors.

    Returns
    -------
    Any
        The trained stack, with the structure of ``models``.

    Raises
    ------
    FloatingPointError
        If the mean loss over the stack is not finite at the end of a chunk.
    """
    params, static = eqx.partition(models, eqx.is_array)
    with jax.numpy_dtype_promotion("standard"):  # Optax's own arithmetic, as above
        opt_state = jax.vmap(optimizer.init)(params)
    weight_array = jnp.asarray(weights, dtype=jnp.result_type(float))
    chunk = max(1, math.ceil(num_steps / NUM_PROGRESS_CHUNKS))
    keys = jax.random.split(rng_key, (num_steps, len(weights)))
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
                weight_array,
                data,
                keys[start:stop],
                loss_fn=loss_fn,
                optimizer=optimizer,
                batch_size=batch_size,
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


def stack_size(models: Any) -> int:
    """Size of the leading (stack) axis of a stack of models.

    Parameters
    ----------
    models
        Equinox pytree whose array leaves share a leading stack axis.

    Returns
    -------
    int
        The size of that axis.
    """
    return jax.tree.leaves(eqx.filter(models, eqx.is_array))[0].shape[0]


def unstack(models: Any) -> tuple[Any, ...]:
    """Split a stack of models into a tuple of models, one per stack entry.

    Parameters
    ----------
    models
        Equinox pytree whose array leaves share a leading stack axis.

    Returns
    -------
    tuple
        ``models`` indexed at ``0, 1, ...`` along the stack axis.
    """
    params, static = eqx.partition(models, eqx.is_array)
    return tuple(
        eqx.combine(jax.tree.map(lambda leaf, i=i: leaf[i], params), static)
        for i in range(stack_size(models))
    )
