"""Eager checks of public arguments; each error names the argument and its value."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rdppl.kernels import MCMCKernel
from rdppl.model import Distortion, Model, ModelStructure, TracedModel
from rdppl.runner import Execution
from rdppl.tracing import trace_model

__all__ = [
    "prepare_model",
    "validate_count",
    "validate_data",
    "validate_encoder",
    "validate_kernel",
    "validate_rng_key",
    "validate_run_settings",
]


def validate_count(value: Any, name: str) -> int:
    """A strictly positive integer."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def validate_rng_key(rng_key: Any) -> jax.Array:
    """A JAX PRNG key (typed, or a legacy ``uint32[2]`` key)."""
    if rng_key is None:
        raise TypeError("rng_key is required, e.g. rng_key=jax.random.key(0)")
    key = jnp.asarray(rng_key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"rng_key must be a single key, got shape {key.shape}")
        return key
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise TypeError(
            "rng_key must be a key from jax.random.key or jax.random.PRNGKey, got "
            f"dtype {key.dtype} and shape {key.shape}"
        )
    return key


def validate_data(data: Any, *, name: str = "data") -> jax.Array:
    """Examples with a leading example axis, all finite."""
    array = np.asarray(data)
    if array.ndim < 1 or array.shape[0] < 1:
        raise ValueError(
            f"{name} must have a leading example axis with at least one example, got "
            f"shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"{name} must be finite, but {name}[{', '.join(map(str, bad))}] = "
            f"{array[tuple(bad)]}"
        )
    if np.issubdtype(array.dtype, np.floating):
        return jnp.asarray(array, dtype=jnp.result_type(float))
    return jnp.asarray(array)


def validate_kernel(kernel: Any) -> MCMCKernel:
    """One of rdppl's kernels (``None``: the default HMC)."""
    if kernel is None:
        from rdppl.kernels import HMC

        return HMC()
    if not isinstance(kernel, MCMCKernel):
        raise TypeError(
            "kernel must be rdppl.HMC(...), rdppl.NUTS(...) or "
            f"rdppl.BlackJAXKernel(step=...), got {kernel!r}"
        )
    return kernel


def validate_run_settings(
    rng_key: Any,
    kernel: Any,
    num_chains: Any,
    chunk_size: Any,
    progress: Any,
) -> tuple[jax.Array, MCMCKernel, int, Execution]:
    """The settings every AIS entry point shares; devices are checked with the data."""
    rng_key = validate_rng_key(rng_key)
    kernel = validate_kernel(kernel)
    num_chains = validate_count(num_chains, "num_chains")
    if chunk_size is not None:
        chunk_size = validate_count(chunk_size, "chunk_size")
    return rng_key, kernel, num_chains, Execution(chunk_size, bool(progress))


def prepare_model(
    model: Model | Callable[..., Any],
    data: Any,
    *,
    distortion: Distortion,
    observed: str | None,
    reconstruction: str | None,
    model_args: Sequence[Any],
    model_kwargs: Mapping[str, Any] | None,
) -> tuple[TracedModel, jax.Array]:
    """Validate the data, then trace the model on its first example."""
    data = validate_data(data)
    target = trace_model(
        model,
        data[0],
        distortion=distortion,
        observed=observed,
        reconstruction=reconstruction,
        model_args=tuple(model_args),
        model_kwargs=model_kwargs,
    )
    return target, data


def validate_encoder(
    encoder: Any, structure: ModelStructure, example: jax.Array
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """A callable ``x -> (loc, scale)`` matching the flat latent dimension."""
    if encoder is None:
        raise ValueError("this method needs encoder=(x -> (loc, scale))")
    if not callable(encoder):
        raise TypeError(f"encoder must be callable x -> (loc, scale), got {encoder!r}")
    output = encoder(example)
    if not (isinstance(output, tuple | list) and len(output) == 2):
        raise ValueError(
            f"encoder(x) must return a pair (loc, scale), got {type(output).__name__}"
        )
    expected = (structure.num_latent_dimensions,)
    for name, value in zip(("loc", "scale"), output, strict=True):
        if np.shape(value) != expected:
            raise ValueError(
                f"encoder {name} must have shape {expected} (the flat unconstrained "
                f"latent dimension of sites "
                f"{[s.name for s in structure.latent_sites]}), got {np.shape(value)}"
            )
    if not np.all(np.asarray(output[1]) > 0):
        raise ValueError(f"encoder scale must be positive, got {np.asarray(output[1])}")
    return encoder
