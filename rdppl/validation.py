"""Eager checks of the entry points' settings; each error names the argument and value.

The entry points (:func:`rdppl.rd_curve`, :func:`rdppl.bdmc`,
:func:`rdppl.log_likelihood`, :func:`rdppl.variational_bounds`, the trainers) check
their settings here and the model and data with
:func:`rdppl.program.prepare.prepare_model`, once, before anything runs; the layers
below trust what they are given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rdppl.program.decorator import ModelStructure
from rdppl.sampler.kernels import MCMCKernel
from rdppl.sampler.protocol import ProtocolOptions
from rdppl.sampler.runner import Execution

__all__ = [
    "validate_count",
    "validate_encoder",
    "validate_kernel",
    "validate_rng_key",
    "validate_run_settings",
    "validate_num_curve_points",
    "validate_preliminary_chains",
    "validate_protocol_options",
    "validate_temperatures",
    "validate_tune_schedule",
]

# Defaults chosen by measurement (docs/benchmarks.md, "Accuracy per gradient
# evaluation" and "Against BlackJAX's tempered SMC"): a preliminary run of a
# sixteenth of the chains (at least 2) adapts the step sizes and mass matrices,
# looking ahead; the reported run's schedule is tuned from it and the chains are
# resampled at every temperature where their weights differ (threshold 1).
DEFAULT_TUNE_SCHEDULE = True
DEFAULT_RESAMPLE_THRESHOLD = 1.0
#: the preliminary run's chains as a fraction of the reported run's (at least
#: MIN_PRELIMINARY_CHAINS, at most all of them)
DEFAULT_PRELIMINARY_FRACTION = 1 / 16
MIN_PRELIMINARY_CHAINS = 2
#: replay the settings the preliminary run reached after each transition
DEFAULT_LOOKAHEAD = True


def validate_count(value: Any, name: str) -> int:
    """A strictly positive integer (an integral float such as ``4.0`` is accepted).

    Parameters
    ----------
    value
        The argument's value.
    name
        The argument's name, for the error message.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``value`` is not a positive integer (``None``, NaN, ``2.5``, ``True``,
        a string or an array included).
    """
    message = f"{name} must be a positive integer, got {value!r}"
    if isinstance(value, bool | np.bool_ | str | bytes | list | tuple | dict):
        raise ValueError(message)
    try:
        if np.ndim(value) != 0:
            raise ValueError(message)
        integer = int(value)
        valid = integer == value and integer >= 1
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(message) from error
    if not valid:
        raise ValueError(message)
    return integer


def validate_rng_key(rng_key: Any) -> jax.Array:
    """A JAX PRNG key (typed, or a legacy ``uint32[2]`` key)."""
    if rng_key is None:
        raise TypeError("rng_key is required, e.g. rng_key=jax.random.key(0)")
    if isinstance(rng_key, np.random.Generator | np.random.RandomState):
        raise TypeError(
            f"rng_key must be a JAX key, got a NumPy {type(rng_key).__name__} "
            f"({rng_key!r}); pass rng_key=jax.random.key(seed)"
        )
    try:
        key = jnp.asarray(rng_key)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"rng_key must be a JAX key, got {rng_key!r}; pass "
            "rng_key=jax.random.key(seed)"
        ) from error
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


def validate_kernel(kernel: Any) -> MCMCKernel:
    """One of rdppl's kernels (``None``: the default, Hamiltonian AIS)."""
    if kernel is None:
        from rdppl.sampler.kernels import default_kernel

        return default_kernel()
    if not isinstance(kernel, MCMCKernel):
        raise TypeError(
            "kernel must be rdppl.HMC(...), rdppl.NUTS(...) or "
            f"rdppl.BlackJAXKernel(step=...), got {kernel!r}"
        )
    return kernel


def validate_tune_schedule(tune_schedule: Any, kernel: MCMCKernel) -> bool:
    """``True``/``False``, or ``None`` for the default (off without adaptation)."""
    if tune_schedule is None:
        return DEFAULT_TUNE_SCHEDULE and kernel.adapt_step_size
    if not isinstance(tune_schedule, bool):
        raise TypeError(
            f"tune_schedule must be True, False or None, got {tune_schedule!r}"
        )
    if tune_schedule and not kernel.adapt_step_size:
        raise ValueError(
            "tune_schedule=True places the temperatures from the preliminary run, "
            "which the kernel's adapt_step_size=False turns off"
        )
    return tune_schedule


def validate_resample_threshold(threshold: Any, kernel: MCMCKernel) -> float | None:
    """The ESS fraction below which to resample, or ``None`` (never).

    ``None`` is the default (``DEFAULT_RESAMPLE_THRESHOLD`` with a preliminary run,
    never without one), ``0`` never resamples, and a fraction in ``(0, 1]`` needs the
    preliminary run.
    """
    if threshold is None:
        return DEFAULT_RESAMPLE_THRESHOLD if kernel.adapt_step_size else None
    if isinstance(threshold, bool) or not isinstance(
        threshold, int | float | np.integer | np.floating
    ):
        raise TypeError(
            "resample_threshold must be None, 0 or a number in (0, 1], got "
            f"{threshold!r}"
        )
    value = float(threshold)
    if value == 0.0:
        return None
    if not 0.0 < value <= 1.0:
        raise ValueError(
            "resample_threshold is a fraction of the chains' importance ESS and must "
            f"be 0 (never) or lie in (0, 1], got {threshold!r}"
        )
    if not kernel.adapt_step_size:
        raise ValueError(
            "resample_threshold needs the preliminary run, which decides where to "
            "resample; the kernel's adapt_step_size=False turns it off"
        )
    return value


def validate_preliminary_chains(
    preliminary_chains: Any, num_chains: int, kernel: MCMCKernel
) -> int | None:
    """The preliminary run's chains per example (``None``: no preliminary run).

    ``None`` is the default: ``DEFAULT_PRELIMINARY_FRACTION`` of ``num_chains``,
    rounded up, at least ``MIN_PRELIMINARY_CHAINS`` (2: the mass matrix needs two
    chains' spread; 2 of 16 were more accurate than 4 at equal gradient evaluations,
    docs/benchmarks.md) and at most ``num_chains``. A given number must be at
    least 2 as well.
    """
    if not kernel.adapt_step_size:
        if preliminary_chains is not None:
            raise ValueError(
                "preliminary_chains sets the preliminary run, which the kernel's "
                "adapt_step_size=False turns off"
            )
        return None
    if preliminary_chains is None:
        wanted = math.ceil(DEFAULT_PRELIMINARY_FRACTION * num_chains)
        return min(num_chains, max(MIN_PRELIMINARY_CHAINS, wanted))
    value = validate_count(preliminary_chains, "preliminary_chains")
    if value < 2:
        raise ValueError(
            "preliminary_chains must be at least 2 (the step size and mass matrix "
            f"adapt to the chains' acceptance and spread), got {preliminary_chains!r}"
        )
    return value


def validate_num_curve_points(num_curve_points: Any) -> int | None:
    """The temperatures a run's records are kept at (``None``: every one)."""
    if num_curve_points is None:
        return None
    value = validate_count(num_curve_points, "num_curve_points")
    if value < 2:
        raise ValueError(
            "num_curve_points must be at least 2 (the first and the last "
            f"temperature), got {num_curve_points!r}"
        )
    return value


def validate_protocol_options(
    tune_schedule: Any,
    resample_threshold: Any,
    kernel: MCMCKernel,
    preliminary_chains: Any = None,
    num_chains: int = 2,
    num_curve_points: Any = None,
) -> ProtocolOptions:
    """The checked options of the preliminary/reported protocol.

    ``num_chains`` is the reported run's number of chains.
    """
    return ProtocolOptions(
        tune_schedule=validate_tune_schedule(tune_schedule, kernel),
        resample_threshold=validate_resample_threshold(resample_threshold, kernel),
        preliminary_chains=validate_preliminary_chains(
            preliminary_chains, num_chains, kernel
        ),
        lookahead=DEFAULT_LOOKAHEAD and kernel.adapt_step_size,
        num_curve_points=validate_num_curve_points(num_curve_points),
    )


def validate_run_settings(
    rng_key: Any,
    kernel: Any,
    num_chains: Any,
    chunk_size: Any,
    progress: Any,
    batch_size: Any = None,
) -> tuple[jax.Array, MCMCKernel, int, Execution]:
    """The settings every AIS entry point shares; devices are checked with the data."""
    rng_key = validate_rng_key(rng_key)
    kernel = validate_kernel(kernel)
    num_chains = validate_count(num_chains, "num_chains")
    if chunk_size is not None:
        chunk_size = validate_count(chunk_size, "chunk_size")
    if batch_size is not None:
        batch_size = validate_count(batch_size, "batch_size")
    return (
        rng_key,
        kernel,
        num_chains,
        Execution(chunk_size, bool(progress), batch_size=batch_size),
    )


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
    for name, value in zip(("loc", "scale"), output, strict=True):
        if not np.all(np.isfinite(np.asarray(value))):
            raise ValueError(
                f"encoder {name} must be finite, got {np.asarray(value)} for "
                "the first example"
            )
    if not np.all(np.asarray(output[1]) > 0):
        raise ValueError(f"encoder scale must be positive, got {np.asarray(output[1])}")
    return encoder


def validate_temperatures(values: Any, name: str) -> np.ndarray:
    """A non-empty 1-D list of real inverse temperatures, as float64.

    Used for the temperatures a caller picks out of a schedule (``posterior_betas``,
    BDMC's ``betas``); whether they are finite and lie inside the schedule is
    checked by the caller.

    Parameters
    ----------
    values
        A number or a list of numbers.
    name
        The argument's name, for the error message.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, ``n >= 1``.

    Raises
    ------
    TypeError
        A string, strings, objects, booleans or complex numbers.
    ValueError
        Ragged or nested lists, or an empty list.
    """
    message = (
        f"{name} must be a number or a non-empty 1-D list of numbers, got "
        f"{values!r:.80}"
    )
    if isinstance(values, str | bytes):
        raise TypeError(message)
    try:
        array = np.atleast_1d(np.asarray(values))
    except (TypeError, ValueError) as error:
        raise ValueError(message) from error
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{message} (dtype {array.dtype})")
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{message} (shape {array.shape})")
    return array.astype(np.float64)
